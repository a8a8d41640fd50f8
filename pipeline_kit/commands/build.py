"""``pipeline-kit build``: detect, then retag or run a builder, push, and report the digest."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline_kit.ci.context import DEFAULT_DOTENV
from pipeline_kit.errors import ExitCode, InputError, KitError

if TYPE_CHECKING:
    from pipeline_kit.adapters.git import Git
    from pipeline_kit.adapters.registry.client import Manifest
    from pipeline_kit.append.planner import AppendPlan
    from pipeline_kit.build.builders.base import BuildRequest
    from pipeline_kit.build.plan import CheckoutPaths
    from pipeline_kit.ci.trust import Trust
    from pipeline_kit.config.loader import Config
    from pipeline_kit.detect.changes import Detection
    from pipeline_kit.publish.publisher import Publisher


@dataclass(frozen=True)
class BuildOptions:
    config_path: Path | None
    cwd: Path
    base: str | None = None
    head: str | None = None
    merge_base: bool = False
    build_args: Mapping[str, str] = field(default_factory=dict)
    builder: str | None = None
    strategy: str | None = None
    extra_tags: tuple[str, ...] = ()
    cache_repo: str | None = None
    insecure_registries: tuple[str, ...] = ()
    dry_run: bool = False
    format: str = "text"
    dotenv: Path = DEFAULT_DOTENV
    environ: Mapping[str, str] = field(default_factory=dict)


class AppendRefused(KitError):
    """``--strategy append`` and the change cannot be appended: a verdict on the change."""

    exit_code = ExitCode.VERDICT


class _Phases:
    """Wall time of each phase, for the build record."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.monotonic()

    def done(self, phase: str, since: float) -> float:
        now = time.monotonic()
        self.seconds[phase] = round(now - since, 3)
        return now

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.monotonic() - self._start, 3)}


def run(options: BuildOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.adapters.git import Git
    from pipeline_kit.adapters.registry.client import is_plain_http
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.build.plan import (
        BuildSettings,
        CheckoutPaths,
        build_request,
        image_labels,
        plan_build,
    )
    from pipeline_kit.ci.context import from_environ, resolve_context
    from pipeline_kit.config.loader import for_run, load_config
    from pipeline_kit.detect.changes import detect_changes
    from pipeline_kit.detect.records import previous_candidates
    from pipeline_kit.detect.revisions import choose_range
    from pipeline_kit.publish.publisher import Publisher
    from pipeline_kit.publish.tags import compute_tags, rules_from_section
    from pipeline_kit.report.outputs import check_destination

    check_destination(options.format, options.environ)
    phases = _Phases()
    started = time.monotonic()
    config = for_run(load_config(options.config_path, options.cwd), options.environ, log)
    config = config.with_build_args(options.build_args)
    image = config.image
    if not image:
        raise InputError(
            f"{config.display}: no `image` to build.",
            hint="Set `image: registry.example.com/team/service` in the config.",
        )
    ci_environ = from_environ(options.environ)
    trust = ci_environ.trust
    with Git(config.root) as git:
        rng = choose_range(
            git,
            ci_environ,
            base=options.base,
            head=options.head,
            merge_base=options.merge_base,
            worktree=None,
        )
        _check_builds_checkout(git, rng.head, rng.worktree)
        if not ci_environ.is_ci:
            git.ask_local_facts(rng.head)  # the tags' facts come while detection reads objects
        detection = detect_changes(git, config, rng, with_chain=True)
        paths = CheckoutPaths.of(config, git.root)
        ci = resolve_context(config.root, options.environ, rng.head, git)
    tags = [t.name for t in compute_tags(ci, rules_from_section(config.section("tags")))]
    tags += [t for t in options.extra_tags if t not in tags]
    started = phases.done("detect", started)

    settings = BuildSettings.from_config(
        config,
        image,
        builder=options.builder,
        strategy=options.strategy,
        cache_repo=options.cache_repo,
        insecure=options.insecure_registries,
        trust=trust,
    )
    plain = {
        host
        for host in (ImageRef.parse(image).registry, ImageRef.parse(settings.cache_repo).registry)
        if is_plain_http(host, settings.insecure_hosts)
    }
    settings = dataclasses.replace(settings, insecure_hosts=settings.insecure_hosts | plain)
    publisher = Publisher(image, settings.insecure_hosts, options.environ, progress=log)
    # One round trip for the content key and every place a previous image may be.
    wants_append = settings.strategy != "builder"
    candidates = previous_candidates(detection, trust) if wants_append else []
    recorded, manifests = publisher.lookup(detection.image_key, candidates, trust)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = image_labels(detection, ci, created)
    append_plan, refused = None, None
    if wants_append and recorded is None:
        append_plan, refused = _try_append(
            publisher, detection, config, paths, labels, created, options, manifests, trust
        )
        if append_plan is None and settings.strategy == "append":
            raise AppendRefused(
                f"append cannot publish this change: {refused}.",
                hint="Build it with --strategy auto (or builder).",
            )
    largest = None
    if recorded is None and append_plan is None:
        largest = publisher.largest_layer(detection.base_image_key)
    request = build_request(
        detection,
        config,
        settings,
        image=image,
        tags=tags,
        labels=labels,
        largest_previous_layer=largest,
        paths=paths,
        trust=trust,
    )
    plan = plan_build(
        detection,
        request,
        recorded.digest if recorded else None,
        strategy=settings.strategy,
        appended_to=append_plan.previous.reference if append_plan else None,
        append_refused=refused,
        recorded_tag=recorded.tag if recorded else None,
    )
    builder = None
    if plan.strategy == "builder":
        from pipeline_kit.build.builders import choose_builder

        builder = choose_builder(settings.builder)
        builder.preflight(request)
    started = phases.done("plan", started)

    record: dict[str, Any] = {
        "image": image,
        "digest": None,
        "tags": list(request.tags),
        "references": request.references(),
        "strategy": plan.strategy,
        "builder": builder.name if builder else None,
        "reason": plan.reason,
        "fallback": plan.fallback,
        "previous": append_plan.previous.reference if append_plan else None,
        "bytes_uploaded": None,
        "image_key": detection.image_key,
        "rebuild_from": detection.rebuild_from,
        "image_changed": detection.image_changed,
        "layers": {
            layer.name: {"changed": layer.changed, "key": layer.key} for layer in detection.layers
        },
        "head": detection.range.head,
        "trust": {"trusted": trust.trusted, "why": trust.why, "records": trust.key_prefix},
    }
    if not trust.trusted:
        log.write(
            f"pipeline-kit: untrusted: {trust.why}: records go under {trust.key_prefix}, "
            "no protected tag is written, the builders' cache is read only\n"
        )
    log.write(f"pipeline-kit: {plan.strategy}: {plan.reason}\n")
    if plan.fallback:
        log.write(f"pipeline-kit: not appended: {plan.fallback}\n")
    if append_plan is not None:
        record["append"] = append_plan.summary()
    from pipeline_kit.build.scratch import scratch_dir  # only a builder needs a working directory

    keep_out = (config.root, config.context_path)
    if options.dry_run:
        with scratch_dir("pipeline-kit-build-", *keep_out) as tmp:
            commands = builder.commands(_own_storage(request, tmp, trust), tmp) if builder else []
        record["commands"] = commands
        record["publish"] = publisher.describe(plan)
        record["timings"] = phases.total()
        _write(record, options, out)
        return ExitCode.OK

    if plan.strategy == "retag":
        assert plan.retag_from is not None
        record["digest"] = publisher.retag(plan.retag_from, request.tags)
        record["bytes_uploaded"] = 0
        phases.done("push", started)
    elif plan.strategy == "append":
        assert append_plan is not None
        record["digest"], record["bytes_uploaded"] = publisher.publish_append(
            append_plan, request.tags
        )
        phases.done("push", started)
    else:
        assert builder is not None
        from pipeline_kit.ci.logs import LogGroups

        groups = LogGroups(ci.provider, log)
        with scratch_dir("pipeline-kit-build-", *keep_out) as workdir:
            docker_config = publisher.docker_config(workdir / "docker", settings.cache_repo)
            with groups.group(f"{builder.name}: build {image}"):
                output = builder.build(
                    _own_storage(request, workdir, trust), workdir, docker_config, groups.line
                )
            started = phases.done("build", started)
            if output.layout is not None:
                with groups.group(f"push {image}"):
                    record["digest"], record["bytes_uploaded"] = publisher.push_layout(
                        output.layout, request.tags
                    )
            else:
                record["digest"] = output.digest
            phases.done("push", started)
    record["timings"] = phases.total()
    _write(record, options, out)
    return ExitCode.OK


def _try_append(
    publisher: Publisher,
    detection: Detection,
    config: Config,
    paths: CheckoutPaths,
    labels: Mapping[str, str],
    created: str,
    options: BuildOptions,
    manifests: Mapping[str, Manifest | None],
    trust: Trust,
) -> tuple[AppendPlan | None, str | None]:
    """An append plan, or None and why the builder is needed."""
    from pipeline_kit.append import CannotAppend
    from pipeline_kit.append.attempt import prepare_append

    try:
        plan = prepare_append(
            publisher.append_remote(),
            detection,
            context=paths.context,
            dockerfile=paths.dockerfile,
            build_args=config.build_args,
            labels=labels,
            created=created,
            environ=options.environ,
            manifests=manifests,
            trust=trust,
        )
    except CannotAppend as refusal:
        return None, refusal.reason
    return plan, None


def _own_storage(request: BuildRequest, workdir: Path, trust: Trust) -> BuildRequest:
    """An untrusted build keeps buildah's layers in a storage of its own, removed after it:
    buildah's layer cache does not key on host mounts, so a later build sharing the storage
    would take a RUN layer that a mount made."""
    if trust.trusted:
        return request
    private = {
        "root": str(workdir / "storage" / "root"),
        "runroot": str(workdir / "storage" / "run"),
    }
    return dataclasses.replace(request, storage={**request.storage, **private})


def _check_builds_checkout(git: Git, head: str, worktree: bool) -> None:
    """The builder builds the files on disk: --head must be what is checked out."""
    checked_out = git.resolve_commit("HEAD")
    if not worktree and head != checked_out:
        raise InputError(
            f"--head {head[:12]} is not the checked-out commit ({(checked_out or '?')[:12]}); "
            "the builder builds the files on disk.",
            hint="Check out that commit first, or leave --head out.",
        )


def _write(record: dict[str, Any], options: BuildOptions, out: TextIO) -> None:
    from pipeline_kit.report import build as report
    from pipeline_kit.report.outputs import export

    if options.format == "json":
        out.write(json.dumps(record, indent=2) + "\n")
        return
    export(
        options.format,
        report.outputs(record),
        environ=options.environ,
        dotenv=options.cwd / options.dotenv,
        summary=report.markdown(record),
    )
    out.write(report.as_text(record))
