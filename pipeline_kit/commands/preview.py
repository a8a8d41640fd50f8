"""``pipeline-kit preview up|down|status|gc|run``: a preview environment for a digest.

``run`` is the guarantee: up, the smoke gate against the preview, and down in a ``finally``
that also runs on SIGTERM and SIGINT (a cancelled CI job). Anything that still leaks (a killed
runner) carries its expiry, and ``gc`` removes it by age.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline_kit.build.scratch import scratch_dir
from pipeline_kit.ci.context import DEFAULT_DOTENV
from pipeline_kit.errors import ExitCode, InputError, KitError
from pipeline_kit.report.outputs import record_json

if TYPE_CHECKING:
    from pipeline_kit.ci.context import CIContext
    from pipeline_kit.preview import PreviewProvider
    from pipeline_kit.preview.model import PreviewSpec
    from pipeline_kit.preview.settings import PreviewContext
    from pipeline_kit.smoke.session import SmokeOptions

LOG_LINES = 40
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class PreviewOptions:
    """What every preview subcommand takes."""

    config_path: Path | None
    cwd: Path
    provider: str | None = None
    format: str = "text"
    environ: Mapping[str, str] = field(default_factory=dict)
    now: datetime | None = None  # the clock expiry is measured against (default: now)
    dotenv: Path = DEFAULT_DOTENV


@dataclass(frozen=True)
class UpOptions:
    common: PreviewOptions
    image: str  # repo@sha256:...
    weights: Path | None = None
    ttl: str | None = None
    name: str | None = None  # default: from the ref
    port: int | None = None
    owner: str | None = None


@dataclass(frozen=True)
class NameOptions:
    """``down`` and ``status``: one preview by name (default: this ref's), or all."""

    common: PreviewOptions
    name: str | None = None


@dataclass(frozen=True)
class GcOptions:
    common: PreviewOptions
    dry_run: bool = False


@dataclass(frozen=True)
class RunOptions:
    up: UpOptions
    smoke: SmokeOptions  # url and digest are the preview's


def _now(common: PreviewOptions) -> datetime:
    return common.now or datetime.now(timezone.utc)


@contextlib.contextmanager
def _session(
    common: PreviewOptions, log: TextIO, **settings: Any
) -> Iterator[tuple[PreviewProvider, PreviewContext]]:
    from pipeline_kit.config.loader import for_run, load_config
    from pipeline_kit.config.service import ServiceSpec
    from pipeline_kit.preview import PROVIDERS
    from pipeline_kit.preview.settings import PreviewContext, PreviewSettings

    config = for_run(load_config(common.config_path, common.cwd), common.environ, log)
    resolved = PreviewSettings.from_config(
        config, provider=common.provider, cwd=common.cwd, **settings
    )
    given_as = "--provider" if common.provider else "preview.provider"
    provider = PROVIDERS.get(resolved.provider, given_as=given_as)

    def say(message: str) -> None:
        log.write(f"pipeline-kit preview: {message}\n")
        log.flush()

    with scratch_dir("pipeline-kit-preview-", config.root) as tmp:
        service = ServiceSpec.from_config(config)
        yield provider, PreviewContext(config, service, resolved, common.environ, tmp, say)


def _ci_context(ctx: PreviewContext) -> CIContext:
    from pipeline_kit.ci.context import resolve_context

    return resolve_context(ctx.config.root, ctx.environ, None)


def _name(ctx: PreviewContext, given: str | None) -> str:
    from pipeline_kit.preview.model import preview_name

    if given is not None:
        if not _NAME.match(given):
            raise InputError(
                f"--name {given}: not a DNS label.",
                hint="Use lowercase letters, digits and '-', at most 63 characters.",
            )
        return given
    try:
        ci = _ci_context(ctx)
    except InputError as exc:
        raise InputError(
            f"{exc.message} The preview's name comes from the branch or pull request.",
            hint="Run in the checkout, or give the preview's name (NAME, or --name for up).",
        ) from None
    return preview_name(ctx.settings.prefix, ci)


def _spec(ctx: PreviewContext, options: UpOptions) -> PreviewSpec:
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.ci.context import CIContext
    from pipeline_kit.preview.model import PreviewSpec, ref_slug

    image = ImageRef.parse(options.image)
    if image.digest is None:
        raise InputError(
            f"--image {options.image}: a tag is not a preview reference.",
            hint="Previews run the digest the gate will judge: repo@sha256:... "
            "(the build record has it).",
        )
    try:
        ci = _ci_context(ctx)
    except InputError:
        if options.name is None:
            raise
        ci = CIContext(provider="local")  # named explicitly, outside a checkout
    created = _now(options.common)
    return PreviewSpec(
        name=_name(ctx, options.name),
        scope=ctx.settings.scope,
        image=f"{image.registry}/{image.repository}@{image.digest}",
        ref=ref_slug(ci)[1],
        owner=options.owner or ci.actor or _login(),
        created=created,
        expires=created + timedelta(seconds=ctx.settings.ttl_seconds),
        weights=ctx.settings.weights,
        port=options.port,
    )


def _login() -> str:
    """The account the kit runs as, where neither CI nor $USER names anyone."""
    import os
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "unknown"


def _up_settings(options: UpOptions) -> dict[str, Any]:
    return {"ttl": options.ttl, "weights": options.weights}


def up(options: UpOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.ci.signals import Interrupted, cancellable, shielded
    from pipeline_kit.report import preview as report
    from pipeline_kit.report.outputs import check_destination

    check_destination(options.common.format, options.common.environ)
    with _session(options.common, log, **_up_settings(options)) as (provider, ctx):
        spec = _spec(ctx, options)
        with cancellable():
            try:
                preview = provider.up(ctx, spec)
            except Interrupted:
                with shielded():  # a half-made preview would only wait for gc
                    provider.down(ctx, spec.name)
                raise
    record = preview.record()
    if options.common.format == "json":
        out.write(report.to_json_text(record))
        return ExitCode.OK
    _export(options.common, [*report.outputs(record), record_json(record)])
    out.write(report.record_text(record))
    return ExitCode.OK


def down(options: NameOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.report import preview as report

    with _session(options.common, log) as (provider, ctx):
        name = _name(ctx, options.name)
        removed = provider.down(ctx, name)
    document: dict[str, Any] = {"name": name, "removed": removed}
    if not removed:
        document["note"] = "no such preview; nothing to remove"
    text = report.to_json_text(document) if options.common.format == "json" else None
    out.write(text or report.down_text(document))
    return ExitCode.OK


def status(options: NameOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.report import preview as report

    now = _now(options.common)
    with _session(options.common, log) as (provider, ctx):
        if options.name is not None:
            found = provider.find(ctx, _name(ctx, options.name))
            previews = [found] if found else []
        else:
            previews = provider.previews(ctx)
        scope = ctx.settings.scope
    records = [p.record(now) for p in sorted(previews, key=lambda p: p.name)]
    if options.common.format == "json":
        out.write(report.to_json_text({"scope": scope, "previews": records}))
    else:
        out.write(report.previews_table(records, now))
    return ExitCode.OK


def gc(options: GcOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.report import preview as report

    now = _now(options.common)
    removed, kept = [], []
    with _session(options.common, log) as (provider, ctx):
        for preview in sorted(provider.previews(ctx), key=lambda p: p.name):
            if preview.expired(now) and preview.state != "terminating":
                if not options.dry_run:
                    provider.down(ctx, preview.name)
                removed.append(preview.record(now))
            else:
                kept.append(preview.record(now))
        scope = ctx.settings.scope
    document = {"scope": scope, "dry_run": options.dry_run, "removed": removed, "kept": kept}
    text = report.to_json_text(document) if options.common.format == "json" else None
    out.write(text or report.gc_text(document, now))
    return ExitCode.OK


def run(options: RunOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    """Up, gate, down: down runs however the gate ends, also on SIGTERM and SIGINT."""
    from pipeline_kit.ci.signals import Interrupted, cancellable
    from pipeline_kit.report import preview as report
    from pipeline_kit.report import smoke as smoke_report
    from pipeline_kit.report.outputs import check_destination
    from pipeline_kit.smoke import session as smoke

    common = options.up.common
    check_destination(common.format, common.environ)
    timings: dict[str, float] = {}
    verdict = None
    preview = None
    with _session(common, log, **_up_settings(options.up)) as (provider, ctx):
        spec = _spec(ctx, options.up)
        failure: BaseException | None = None
        # From here on a signal is either an exception (until the teardown) or held back
        # (during it): there is no moment where SIGTERM ends the process with the preview up.
        with cancellable():
            try:
                started = time.monotonic()
                preview = provider.up(ctx, spec)
                timings["up"] = round(time.monotonic() - started, 3)
                ctx.say(f"{spec.name} is up at {preview.url or '(no URL)'}; gating {spec.digest}")
                started = time.monotonic()
                with provider.reach(ctx, preview) as url:
                    gated = dataclasses.replace(
                        options.smoke, url=url, digest=spec.digest, image=spec.image
                    )
                    verdict = smoke.gate(gated, log, alive=lambda: provider.alive(ctx, spec.name))
                timings["gate"] = round(time.monotonic() - started, 3)
                if not verdict.passed:
                    _show_logs(provider, ctx, spec.name, log)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                removed, arrived = _teardown(provider, ctx, spec.name, failure, timings)
            if arrived:
                raise Interrupted(arrived[0])
    assert verdict is not None and preview is not None
    smoke_report.write_files(verdict, options.smoke)
    record = preview.record()
    document = {
        "passed": verdict.passed,
        "preview": record,
        "smoke": smoke_report.as_json(verdict),
        "down": {"name": spec.name, "removed": removed},
        "timings": timings,
    }
    if common.format == "json":
        out.write(report.to_json_text(document))
    else:
        verdict_outputs = [("verdict", smoke_report.verdict_word(verdict.passed))]
        _export(common, [*verdict_outputs, *report.outputs(record), record_json(document)])
        out.write(smoke_report.as_text(verdict))
        out.write(f"preview {spec.name}: {'removed' if removed else 'was already gone'}\n")
    return ExitCode.OK if verdict.passed else ExitCode.VERDICT


def _export(common: PreviewOptions, outputs: list[tuple[str, str]]) -> None:
    from pipeline_kit.report.outputs import export

    export(common.format, outputs, environ=common.environ, dotenv=common.cwd / common.dotenv)


def _teardown(
    provider: PreviewProvider,
    ctx: PreviewContext,
    name: str,
    failure: BaseException | None,
    timings: dict[str, float],
) -> tuple[bool, list[int]]:
    """Down, with signals held back until it is done. A teardown error is raised unless a
    failure is already on its way out (then it is said, and the first failure wins)."""
    from pipeline_kit.ci.signals import shielded

    removed = False
    with shielded() as arrived:
        started = time.monotonic()
        try:
            removed = provider.down(ctx, name)
            ctx.say(f"{name} torn down" if removed else f"{name} was already gone")
        except KitError as exc:
            ctx.say(f"could not tear {name} down: {exc}; `pipeline-kit preview gc` finds it later")
            if failure is None:
                raise
        timings["down"] = round(time.monotonic() - started, 3)
    return removed, arrived


def _show_logs(provider: PreviewProvider, ctx: PreviewContext, name: str, log: TextIO) -> None:
    try:
        text = provider.logs(ctx, name, LOG_LINES)
    except KitError as exc:
        text = f"(no logs: {exc})"
    if text.strip():
        log.write(f"-- last lines of {name} --\n{text.rstrip()}\n-- end of {name} --\n")
