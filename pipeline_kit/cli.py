"""The command line: the only module that imports click.

Each command fills an options object and calls a plain function in ``pipeline_kit.commands``;
``main`` is the one place where errors become messages and exit codes. Command modules are
imported when their command runs, so ``pipeline-kit --version`` loads almost nothing.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TypeVar

import click

from pipeline_kit import __version__
from pipeline_kit.build import STRATEGIES
from pipeline_kit.build.builders import BUILDERS
from pipeline_kit.errors import ExitCode, KitError, crash_report
from pipeline_kit.preview import PROVIDERS
from pipeline_kit.smoke import PROTOCOLS

_FORMATS = ["text", "json"]
# Commands whose results feed later CI steps also write them as GitHub step outputs or a GitLab
# dotenv report (report.outputs.FORMATS).
_CI_FORMATS = ["text", "json", "github", "gitlab"]
F = TypeVar("F", bound=Callable[..., Any])


_ci_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(_CI_FORMATS),
    default="text",
    help="github: also write step outputs to $GITHUB_OUTPUT; gitlab: also a dotenv report.",
)
_dotenv = click.option(
    "--dotenv",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("pipeline-kit.env"),
    show_default=True,
    help="Where --format gitlab writes its dotenv report.",
)


def _ci_outputs(command: F) -> F:
    return _ci_format(_dotenv(command))


_platform = click.option(
    "--platform",
    default=None,
    metavar="OS/ARCH[/VARIANT]",
    help="Target platform for BuildKit's automatic TARGET* ARGs, e.g. linux/arm64 "
    "(default: `platform` in the config, else this machine's).",
)


def _build_args(values: tuple[str, ...]) -> dict[str, str]:
    args: dict[str, str] = {}
    for value in values:
        name, eq, arg = value.partition("=")
        if not eq or not name:
            raise click.BadParameter(f"'{value}' is not NAME=VALUE.", param_hint="--build-arg")
        args[name] = arg
    return args


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pipeline-kit")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Config file (default: ./pipeline-kit.yaml if present).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """CI kit for LLM inference images: detect changed layers, lint Dockerfiles."""
    ctx.obj = config_path


@cli.command()
@click.option("--base", help="Base revision (default: from the CI event, else HEAD~1).")
@click.option("--head", help="Head revision (default: the CI commit, else HEAD).")
@click.option(
    "--merge-base", is_flag=True, help="Compare against the merge base of --base and --head."
)
@click.option(
    "--worktree/--no-worktree",
    default=None,
    help="Include uncommitted changes (default: yes when run locally on a dirty tree).",
)
@click.option("--build-arg", "build_args", multiple=True, metavar="NAME=VALUE")
@_platform
@_ci_outputs
@click.pass_obj
def detect(
    config_path: Path | None,
    base: str | None,
    head: str | None,
    merge_base: bool,
    worktree: bool | None,
    build_args: tuple[str, ...],
    platform: str | None,
    fmt: str,
    dotenv: Path,
) -> int:
    """Which image layers changed between two commits, why, and their content keys."""
    from pipeline_kit.commands.detect import DetectOptions, run

    options = DetectOptions(
        config_path=config_path,
        cwd=Path.cwd(),
        base=base,
        head=head,
        merge_base=merge_base,
        worktree=worktree,
        build_args=_build_args(build_args),
        platform=platform,
        format=fmt,
        dotenv=dotenv,
        environ=dict(os.environ),
    )
    return run(options, sys.stdout)


@cli.command()
@click.argument("dockerfile", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "github", "gitlab"]), default="text"
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to this file (e.g. gl-code-quality-report.json).",
)
@click.option(
    "--builder",
    type=click.Choice(BUILDERS.choices),
    default=None,
    help="The builder that will build it (default: build.builder in the config).",
)
@_platform
@click.pass_obj
def lint(
    config_path: Path | None,
    dockerfile: Path | None,
    fmt: str,
    output: Path | None,
    builder: str | None,
    platform: str | None,
) -> int:
    """The Dockerfile doctor: anti-patterns of model-serving images."""
    from pipeline_kit.commands.lint import LintOptions, run

    options = LintOptions(
        config_path=config_path,
        cwd=Path.cwd(),
        dockerfile=dockerfile,
        format=fmt,
        output=output,
        builder=builder,
        platform=platform,
    )
    return int(run(options, sys.stdout))


@cli.command()
@click.option("--base", help="Base revision (default: as for detect).")
@click.option("--head", help="Head revision; must be the checked-out commit (default: HEAD).")
@click.option("--merge-base", is_flag=True, help="Compare against the merge base.")
@click.option("--build-arg", "build_args", multiple=True, metavar="NAME=VALUE")
@_platform
@click.option(
    "--platforms",
    default=None,
    metavar="OS/ARCH,...",
    help="Build a multi-platform image (an index), e.g. linux/amd64,linux/arm64; BuildKit "
    "only, not with --platform (default: `platforms` in the config).",
)
@click.option(
    "--builder",
    type=click.Choice(BUILDERS.choices),
    default=None,
    help="Builder (default: build.builder in the config, else auto).",
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default=None,
    help="auto: retag, else append, else the builder; append: fail (exit 1) with the reason "
    "when the change cannot be appended; builder: always run the builder "
    "(default: build.strategy, else auto).",
)
@click.option("--tag", "extra_tags", multiple=True, metavar="TAG", help="Add a tag (repeatable).")
@click.option("--cache-repo", help="Layer cache repository (default: <image>/cache).")
@click.option(
    "--insecure-registry",
    "insecure",
    multiple=True,
    metavar="HOST",
    help="Reach this registry over plain HTTP (loopback always is).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and the commands; run nothing.")
@_ci_outputs
@click.pass_obj
def build(
    config_path: Path | None,
    base: str | None,
    head: str | None,
    merge_base: bool,
    build_args: tuple[str, ...],
    platform: str | None,
    platforms: str | None,
    builder: str | None,
    strategy: str | None,
    extra_tags: tuple[str, ...],
    cache_repo: str | None,
    insecure: tuple[str, ...],
    dry_run: bool,
    fmt: str,
    dotenv: Path,
) -> int:
    """Publish the image: retag known content, append code-only changes, or build and push."""
    from pipeline_kit.commands.build import BuildOptions, run

    options = BuildOptions(
        config_path=config_path,
        cwd=Path.cwd(),
        base=base,
        head=head,
        merge_base=merge_base,
        build_args=_build_args(build_args),
        platform=platform,
        platforms=_split_platforms(platforms),
        builder=builder,
        strategy=strategy,
        extra_tags=extra_tags,
        cache_repo=cache_repo,
        insecure_registries=insecure,
        dry_run=dry_run,
        format=fmt,
        dotenv=dotenv,
        environ=dict(os.environ),
    )
    return run(options, sys.stdout)


def _split_platforms(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@cli.command()
@click.argument("children", nargs=-1, metavar="[PLATFORM=REFERENCE]...")
@click.option("--head", help="Commit the tags are for (default: the CI commit, else HEAD).")
@click.option("--tag", "extra_tags", multiple=True, metavar="TAG", help="Add a tag (repeatable).")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST")
@_ci_outputs
@click.pass_obj
def merge(
    config_path: Path | None,
    children: tuple[str, ...],
    head: str | None,
    extra_tags: tuple[str, ...],
    insecure: tuple[str, ...],
    fmt: str,
    dotenv: Path,
) -> int:
    """Put per-platform images in one multi-platform index, pushed under the build's tags.

    Each child is PLATFORM=REFERENCE (a tag, a digest or repo@sha256:... in the image's
    repository); without any, each of the config's `platforms` is taken from the build's first
    tag with the platform's suffix (what `build --platform OS/ARCH` pushes). Registry
    operations only; each child's config must say the platform it is listed as.
    """
    from pipeline_kit.commands.merge import MergeOptions, run

    options = MergeOptions(
        config_path=config_path,
        cwd=Path.cwd(),
        children=children,
        head=head,
        extra_tags=extra_tags,
        insecure_registries=insecure,
        format=fmt,
        dotenv=dotenv,
        environ=dict(os.environ),
    )
    return run(options, sys.stdout)


@cli.command()
@click.argument("source")
@click.argument("targets", nargs=-1, required=True, metavar="TAG...")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST")
@_ci_outputs
@click.pass_obj
def promote(
    config_path: Path | None,
    source: str,
    targets: tuple[str, ...],
    insecure: tuple[str, ...],
    fmt: str,
    dotenv: Path,
) -> int:
    """Point TAGs (tag or repo:tag) at SOURCE's digest (repo:tag or repo@sha256:...).

    Registry operations only: a manifest GET and PUT per tag, blobs mounted across
    repositories; nothing is pulled or rebuilt. The digest's provenance and SBOM go along
    (attached in a target repository that lacks them; the config's `attest` turns them off).
    """
    from pipeline_kit.attest.attach import AttestSettings
    from pipeline_kit.commands.promote import PromoteOptions, run
    from pipeline_kit.config.loader import load_config

    attest = AttestSettings.from_section(load_config(config_path, Path.cwd()).section("attest"))
    options = PromoteOptions(
        source, targets, insecure, fmt, dict(os.environ), dotenv,
        attest_provenance=attest.provenance, attest_sbom=attest.sbom,
    )  # fmt: skip
    return run(options, sys.stdout)


@cli.command()
@click.argument("image")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text")
def verify(image: str, insecure: tuple[str, ...], fmt: str) -> int:
    """Check that IMAGE (repo@sha256:...) carries a provenance and an SBOM about it, intact.

    Exit 0 when both are attached and consistent; 1 when one is missing or an attestation's
    subject, digest or predicate type is not what it should be.
    """
    from pipeline_kit.commands.verify import VerifyOptions, run

    return run(VerifyOptions(image, insecure, fmt, dict(os.environ)), sys.stdout)


@cli.group()
def cache() -> None:
    """The builders' remote layer cache."""


@cache.command("gc")
@click.option("--repository", help="Cache repository (default: cache.repository, <image>/cache).")
@click.option("--ttl", help="Delete entries older than this (e.g. 14d; default: cache.ttl).")
@click.option("--keep", type=click.IntRange(min=0), help="Always keep the newest N entries.")
@click.option(
    "--dry-run/--delete",
    "dry_run",
    default=None,
    help="Report only, or delete (default: report when run in a terminal, delete in CI).",
)
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text")
@click.pass_obj
def cache_gc(
    config_path: Path | None,
    repository: str | None,
    ttl: str | None,
    keep: int | None,
    dry_run: bool | None,
    insecure: tuple[str, ...],
    fmt: str,
) -> int:
    """Delete cache entries older than the TTL, beyond the newest KEEP."""
    from pipeline_kit.ci.context import from_environ
    from pipeline_kit.commands.cache_gc import CacheGcOptions, run

    # A CI job is not a person at a terminal, even where the runner gives it one (act does).
    interactive = sys.stdin.isatty() and not from_environ(os.environ).is_ci
    options = CacheGcOptions(
        config_path=config_path,
        cwd=Path.cwd(),
        repository=repository,
        ttl=ttl,
        keep=keep,
        dry_run=dry_run,
        interactive=interactive,
        insecure_registries=insecure,
        format=fmt,
        environ=dict(os.environ),
    )
    return run(options, sys.stdout)


@cli.command()
@click.option("--head", help="Commit to tag (default: the CI commit, else HEAD).")
@_ci_outputs
@click.pass_obj
def tags(config_path: Path | None, head: str | None, fmt: str, dotenv: Path) -> int:
    """The tags this build gets (sha, branch, pr/mr, semver, latest)."""
    from pipeline_kit.commands.tags import TagsOptions, run

    options = TagsOptions(config_path, Path.cwd(), head, fmt, dict(os.environ), dotenv)
    return run(options, sys.stdout)


# The smoke gate's flags, shared by `smoke` and `preview run` (which supplies URL and digest).
_GATE_FLAGS = [
    click.option(
        "--protocol",
        type=click.Choice(PROTOCOLS.choices),
        help="Inference protocol (default: smoke.protocol, else openai-chat).",
    ),
    click.option("--prompt", help="Prompt to send (default: smoke.requests from the config)."),
    click.option("--model", help="Model name in requests (default: service.model)."),
    click.option("--expect-contains", metavar="TEXT", help="The output must contain TEXT."),
    click.option("--expect-regex", metavar="REGEX", help="The output must match REGEX."),
    click.option(
        "--ready-path", metavar="PATH", help="Readiness endpoint (default: /health/ready)."
    ),
    click.option(
        "--ready-timeout", type=float, metavar="S", help="Budget to become ready (default: 15 min)."
    ),
    click.option("--request-timeout", type=float, metavar="S", help="Per request (default: 60)."),
    click.option(
        "--stream/--no-stream", default=None, help="Stream, and check time to first token."
    ),
    click.option("--repeat", type=click.IntRange(min=1), help="Send each request N times."),
    click.option(
        "--max-latency",
        type=float,
        metavar="S",
        help="Latency budget per request, over each request's max_latency.",
    ),
    click.option("--p95", type=float, metavar="S", help="Budget for the p95 latency."),
    click.option(
        "--max-tokens",
        type=click.IntRange(min=1),
        help="Tokens every request asks for, and the most it may return; over smoke.max_tokens "
        "and each request's max_tokens (default: 32).",
    ),
    click.option(
        "--baseline",
        metavar="TAG|DIGEST",
        help="Compare against the gate result recorded on this tag or digest of the image's "
        "repository (over smoke.baseline.reference, default stable).",
    ),
    click.option(
        "--record/--no-record",
        default=None,
        help="Attach a passing result to the judged digest, as the next gate's baseline "
        "(over smoke.baseline.record).",
    ),
]
_REPORT_FLAGS = [
    click.option(
        "--junit", type=click.Path(path_type=Path, dir_okay=False), help="JUnit XML file."
    ),
    click.option(
        "--summary",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Markdown summary file (default: $GITHUB_STEP_SUMMARY when set).",
    ),
    _ci_format,
    _dotenv,
]


def _flags(*groups: list[Callable[[F], F]]) -> Callable[[F], F]:
    """Apply groups of click options in order (the first listed comes first in --help)."""

    def apply(command: F) -> F:
        for group in reversed(groups):
            for option in reversed(group):
                command = option(command)
        return command

    return apply


@cli.command()
@_flags(
    [click.option("--url", help="Base URL of the running server (or smoke.url).")],
    _GATE_FLAGS,
    [
        click.option("--digest", help="The image digest under test (reported in every verdict)."),
        click.option(
            "--image",
            metavar="REPOSITORY",
            help="The repository the digest is in, where results are read and recorded "
            "(default: image from the config).",
        ),
    ],
    _REPORT_FLAGS,
)
@click.pass_obj
def smoke(config_path: Path | None, /, **flags: Any) -> int:
    """The inference gate: wait for readiness, send real requests, check every answer.

    Exit 0 when every check passed, 1 when any failed (never ready, errors, garbage).
    """
    from pipeline_kit.commands.smoke import run
    from pipeline_kit.smoke.session import SmokeOptions

    fmt = flags.pop("fmt")
    options = SmokeOptions(
        config_path=config_path, cwd=Path.cwd(), format=fmt, environ=dict(os.environ), **flags
    )
    return run(options, sys.stdout)


@cli.group()
def render() -> None:
    """Deployment manifests for the digest that passed the gate."""


@render.command("kubernetes")
@click.option("--image", required=True, help="The image by digest: repo@sha256:...")
@click.option("--namespace", help="Namespace (default: kubernetes.namespace, else default).")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the manifests to this file instead of stdout (e.g. for kubectl apply -f).",
)
@click.pass_obj
def render_kubernetes(
    config_path: Path | None, image: str, namespace: str | None, output: Path | None
) -> int:
    """Deployment and Service: probes from service.max_load_time, weights mounted read-only."""
    from pipeline_kit.commands.render import RenderOptions, run

    return run(RenderOptions(config_path, Path.cwd(), image, namespace, output), sys.stdout)


_PREVIEW_FORMAT = click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text")


_provider_flag = click.option(
    "--provider",
    type=click.Choice(PROVIDERS.choices),
    help="Where the preview runs (default: preview.provider, else local).",
)


_UP_FLAGS = [
    click.option("--image", required=True, help="The image by digest: repo@sha256:..."),
    _provider_flag,
    click.option(
        "--weights",
        type=click.Path(path_type=Path, file_okay=False),
        help="local: weights directory, mounted read-only (default: preview.weights).",
    ),
    click.option("--ttl", help="Expire after this long, e.g. 24h (default: preview.ttl)."),
    click.option("--name", help="Preview name (default: <prefix>-<branch, pr-N or mr-N>)."),
    click.option(
        "--port", type=click.IntRange(1, 65535), help="local: host port (default: a free one)."
    ),
    click.option("--owner", help="Owner label (default: the CI actor, else $USER)."),
]


def _preview_options(
    config_path: Path | None, provider: str | None, fmt: str, dotenv: Path | None = None
) -> Any:
    from pipeline_kit.commands.preview import PreviewOptions

    common = PreviewOptions(config_path, Path.cwd(), provider, fmt, dict(os.environ))
    return common if dotenv is None else dataclasses.replace(common, dotenv=dotenv)


@cli.group()
def preview() -> None:
    """Preview environments: run a digest, gate it, tear it down (local, kubernetes, command)."""


@preview.command("up")
@_flags(_UP_FLAGS, [_ci_format, _dotenv])
@click.pass_obj
def preview_up(
    config_path: Path | None, /, provider: str | None, fmt: str, dotenv: Path, **flags: Any
) -> int:
    """Bring the digest up under a name from the ref; print its URL and record."""
    from pipeline_kit.commands.preview import UpOptions, up

    common = _preview_options(config_path, provider, fmt, dotenv)
    return up(UpOptions(common, **flags), sys.stdout)


@preview.command("down")
@click.argument("name", required=False)
@_flags([_provider_flag, _PREVIEW_FORMAT])
@click.pass_obj
def preview_down(config_path: Path | None, name: str | None, provider: str | None, fmt: str) -> int:
    """Tear the preview down (default: this ref's). A missing preview is success."""
    from pipeline_kit.commands.preview import NameOptions, down

    return down(NameOptions(_preview_options(config_path, provider, fmt), name), sys.stdout)


@preview.command("status")
@click.argument("name", required=False)
@_flags([_provider_flag, _PREVIEW_FORMAT])
@click.pass_obj
def preview_status(
    config_path: Path | None, name: str | None, provider: str | None, fmt: str
) -> int:
    """The previews of this scope (or NAME): state, URL, ref, owner, expiry."""
    from pipeline_kit.commands.preview import NameOptions, status

    return status(NameOptions(_preview_options(config_path, provider, fmt), name), sys.stdout)


@preview.command("gc")
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@_flags([_provider_flag, _PREVIEW_FORMAT])
@click.pass_obj
def preview_gc(config_path: Path | None, dry_run: bool, provider: str | None, fmt: str) -> int:
    """Remove the previews of this scope that are past their expiry; keep the rest."""
    from pipeline_kit.commands.preview import GcOptions, gc

    return gc(GcOptions(_preview_options(config_path, provider, fmt), dry_run), sys.stdout)


@preview.command("run")
@_flags(_UP_FLAGS, _GATE_FLAGS, _REPORT_FLAGS)
@click.pass_obj
def preview_run(config_path: Path | None, /, **flags: Any) -> int:
    """Up, the smoke gate against it, down: down runs on every path (also SIGTERM, SIGINT).

    Exit code: the gate's (0 passed, 1 failed), 130 when interrupted.
    """
    from pipeline_kit.commands.preview import RunOptions, UpOptions, run
    from pipeline_kit.smoke.session import SmokeOptions

    common = _preview_options(
        config_path, flags.pop("provider"), flags.pop("fmt"), flags.pop("dotenv")
    )
    up_keys = ("image", "weights", "ttl", "name", "port", "owner")
    up_options = UpOptions(common, **{key: flags.pop(key) for key in up_keys})
    smoke_options = SmokeOptions(
        config_path=config_path, cwd=common.cwd, environ=common.environ, **flags
    )
    return run(RunOptions(up_options, smoke_options), sys.stdout)


@cli.command()
@_flags(
    [
        click.option("--image", required=True, help="The image by digest: repo@sha256:..."),
        click.option("--namespace", help="Namespace (default: kubernetes.namespace, or default)."),
    ],
    _GATE_FLAGS,
    _REPORT_FLAGS,
)
@click.pass_obj
def deploy(config_path: Path | None, /, image: str, namespace: str | None, **flags: Any) -> int:
    """Apply the digest's manifests, wait for the rollout, gate the production Service.

    A rollout that never gets ready or a failed gate is rolled back (rollout undo); a first
    deploy that fails is scaled to zero. Exit code: 0 deployed and gated, 1 failed and rolled
    back, 3 no kubectl or no cluster, 130 interrupted. The cluster comes from KUBECONFIG and
    deploy.context.
    """
    from pipeline_kit.commands.deploy import DeployOptions, run
    from pipeline_kit.smoke.session import SmokeOptions

    fmt = flags.pop("fmt")
    smoke_options = SmokeOptions(
        config_path=config_path, cwd=Path.cwd(), format=fmt, environ=dict(os.environ), **flags
    )
    return run(DeployOptions(image, smoke_options, namespace), sys.stdout)


def _commit_sha(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) == 40 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    raise click.BadParameter(
        f"'{value}' is not a commit SHA: give its 40 hex digits, not a tag or a short SHA.",
        ctx=ctx,
        param=param,
    )


@cli.command()
@click.option(
    "--ci",
    type=click.Choice(["auto", "github", "gitlab", "none"]),  # commands.init.CI_CHOICES
    default="auto",
    show_default=True,
    help="The CI to add the kit to (auto: the one the repository has).",
)
@click.option(
    "--dockerfile", default="Dockerfile", show_default=True, help="Relative to the repository root."
)
@click.option("--image", help="Image repository (default: from the origin remote's forge).")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text")
@click.option(
    "--kit-ref",
    metavar="SHA",
    callback=_commit_sha,
    help="The kit's commit the GitHub callers call (default: the installed release's).",
)
@click.option(
    "--platform",
    default=None,
    metavar="OS/ARCH[/VARIANT]",
    help="The platform the image is built for: written as `platform` in the config, and the "
    "Dockerfile's TARGET* ARGs read for it (default: this machine's, not written).",
)
def init(
    ci: str,
    dockerfile: str,
    image: str | None,
    dry_run: bool,
    fmt: str,
    kit_ref: str | None,
    platform: str | None,
) -> int:
    """Onboard this repository: pipeline-kit.yaml from the Dockerfile, the kit in its CI.

    Edits .gitlab-ci.yml in place (comments, order and quoting kept) or adds a caller
    workflow under .github/workflows/, calling the kit by commit SHA. Run twice, it changes
    nothing.
    """
    from pipeline_kit.commands.init import InitOptions, run

    options = InitOptions(Path.cwd(), ci, dockerfile, image, dry_run, fmt, kit_ref, platform)
    return run(options, sys.stdout)


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text")
@_platform
@click.pass_obj
def config_show(config_path: Path | None, fmt: str, platform: str | None) -> int:
    """The effective config: defaults and inferred layers filled in, with their origin."""
    from pipeline_kit.commands.config_show import ConfigShowOptions, run

    return run(ConfigShowOptions(config_path, Path.cwd(), fmt, platform), sys.stdout)


@config.command("schema")
def config_schema() -> int:
    """Print the JSON Schema of pipeline-kit.yaml (for editors and validators)."""
    import json

    from pipeline_kit.config.loader import schema

    sys.stdout.write(json.dumps(schema(), indent=2) + "\n")
    return ExitCode.OK


class Outcome(NamedTuple):
    code: int
    message: str | None  # what went wrong, as shown on stderr (None: success or a verdict)


def invoke(argv: list[str] | None = None) -> Outcome:
    """Run the CLI; every expected failure becomes one message on stderr and an exit code.

    The message is returned too, for callers that report it elsewhere (the GitHub action
    turns it into an error annotation)."""
    try:
        code: int | None = cli.main(args=argv, prog_name="pipeline-kit", standalone_mode=False)
    except KitError as exc:
        sys.stderr.write(f"pipeline-kit: error: {exc}\n")
        return Outcome(exc.exit_code, str(exc))
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.stderr.write("pipeline-kit: interrupted\n")
        return Outcome(ExitCode.INTERRUPTED, "interrupted")
    except click.ClickException as exc:
        exc.show()
        return Outcome(ExitCode.USAGE, exc.format_message())
    except BrokenPipeError:
        return Outcome(ExitCode.OK, None)
    except Exception as exc:  # a bug in the kit: never read as a verdict on the change
        message = crash_report(exc, os.environ, sys.stderr)
        return Outcome(ExitCode.INFRA, message)
    return Outcome(int(code or 0), None)


def main(argv: list[str] | None = None) -> None:
    _exit(int(invoke(argv).code))


def _exit(code: int) -> NoReturn:
    """End the process without the interpreter's teardown.

    The teardown (collecting every object of every module, then the C libraries' own clean-up
    at exit) costs a short command tens of milliseconds and does nothing the kit needs: by now
    every file it wrote is closed, every child process waited for. Only stdout and stderr may
    still hold buffered output.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        sys.exit(code)  # the interpreter reports what it could not write, as it always did
    os._exit(code)
