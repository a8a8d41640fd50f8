"""What every builder receives and returns, and the Protocol it implements."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pipeline_kit.dockerfile.platform import Platform, parse_platform, runner_platform
from pipeline_kit.errors import EnvironmentFault, ExitCode, InputError, KitError


class BuildFailed(KitError):
    """The builder ran and rejected the change (a verdict, exit 1). A builder that succeeded
    but reported no digest is a fault of the builder, an ``EnvironmentFault`` (exit 3)."""

    exit_code = ExitCode.VERDICT


SECRETS_DIR = "secrets"  # in a build's private working directory: one 0600 file per secret


@dataclass(frozen=True)
class BuildSecret:
    """A build secret by where its value comes from; the value itself is never held here, so a
    request can be printed, recorded and turned into argv."""

    id: str  # as RUN --mount=type=secret,id=<id> names it
    env: str | None = None  # the environment variable that holds the value
    file: str | None = None  # or the file that holds it (absolute, after $VAR expansion)

    @property
    def source(self) -> str:
        return f"${self.env}" if self.env else str(self.file)


def secret_file(workdir: Path, secret: BuildSecret) -> Path:
    """Where the kit puts a secret's value for the builder to read (``--secret src=``)."""
    return workdir / SECRETS_DIR / secret.id


def secret_flags(request: BuildRequest, workdir: Path) -> list[str]:
    """``--secret=id=X,src=FILE`` for each secret, as buildctl, buildx and buildah all take it:
    the value is in a 0600 file in the build's private directory, never on the command line."""
    return [
        f"--secret=id={secret.id},src={secret_file(workdir, secret)}" for secret in request.secrets
    ]


@dataclass(frozen=True)
class BuildRequest:
    """One image build, everything resolved: paths absolute, tags final, cache repo chosen."""

    image: str  # repository, no tag
    dockerfile: Path
    context: Path
    target: str | None
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    tags: tuple[str, ...]  # every tag to publish, the image-key tag included
    cache_repo: str
    cache_ttl: str  # Go duration, as Kaniko takes it
    push_cache: bool = True  # False: read the cache, write none (an untrusted ref's build)
    insecure_hosts: frozenset[str] = frozenset()  # registries reached over plain HTTP
    compressed_caching: bool = True  # False for multi-GB layers (Kaniko holds them in memory)
    cache_copy_layers: bool = True  # Kaniko: else COPY layers get new digests every build
    push_retry: int = 3
    download_retry: int = 3
    volumes: tuple[str, ...] = ()  # host:container[:ro] mounts for RUN steps (buildah)
    storage: Mapping[str, str] = field(default_factory=dict)  # buildah storage-driver/root/runroot
    isolation: str = "chroot"
    platform: str | None = None  # OS/ARCH[/VARIANT] when the config chose one; else the runner's
    platforms: tuple[str, ...] = ()  # several: one run builds them all and pushes an index
    secrets: tuple[BuildSecret, ...] = ()  # RUN --mount=type=secret values (BuildKit, buildah)

    @property
    def registry(self) -> str:
        return self.image.split("/", 1)[0]

    def references(self) -> list[str]:
        return [f"{self.image}:{tag}" for tag in self.tags]


def refuse_several_platforms(request: BuildRequest, builder: str) -> None:
    """A builder that makes one platform per run refuses a multi-platform request."""
    if len(request.platforms) > 1:
        raise InputError(
            f"platforms ({', '.join(request.platforms)}): {builder} builds one platform per run.",
            hint="Build with --builder buildkit, or run one job per platform with --platform "
            "OS/ARCH and then `pipeline-kit merge` to put the children in one index.",
        )


def local_machine_runs(platform: Platform) -> bool | None:
    """Whether RUN steps of ``platform`` run on this machine (buildah's and Kaniko's RUN
    steps execute here): natively, or through an emulator the kernel hands them to."""
    here = runner_platform()
    if (platform.os, platform.arch) == (here.os, here.arch):
        return True
    if platform.os != "linux":
        return None
    from pipeline_kit.adapters.emulator import runs_programs_of

    return runs_programs_of(platform.arch)


def refuse_unrunnable_platforms(
    request: BuildRequest,
    builder: str,
    runs: Callable[[Platform], bool | None],
    where: str = "this machine",
) -> None:
    """Refuse, before anything is built, a build with a RUN step of a platform ``runs`` says
    cannot run there: it would fail at that step with ``exec format error``, after the steps
    before it. A platform ``runs`` cannot tell about is left to the builder."""
    from pipeline_kit.dockerfile.run_platforms import runs_by_platform

    texts = request.platforms or ((request.platform,) if request.platform else ())
    platforms = [parse_platform(text) for text in texts] or [runner_platform()]
    steps = runs_by_platform(
        request.dockerfile.read_text(encoding="utf-8"),
        source=dockerfile_shown(request),
        build_args=request.build_args,
        target=request.target,
        platforms=platforms,
    )
    for step in steps:
        if runs(step.platform) is not False:
            continue
        building = "" if step.built == step.platform else f" (building {step.built})"
        arch = step.platform.arch
        shown = f"{dockerfile_shown(request)}:{step.instruction.line}"
        raise EnvironmentFault(
            f"{shown}: RUN as {step.platform}{building}: "
            f"{where} does not run {step.platform} programs, so {builder} would fail at this "
            "step with `exec format error`.",
            hint=f"Run this platform's build on a {step.platform} runner (a job per platform, "
            "then `pipeline-kit merge`), register an emulator on the machine that builds "
            f"(`docker run --privileged --rm tonistiigi/binfmt --install {arch}`, or Debian's "
            "qemu-user-static), or start the stage with `FROM --platform=$BUILDPLATFORM` "
            "so that it runs natively and cross-compiles.",
        )


def dockerfile_shown(request: BuildRequest) -> str:
    """The Dockerfile's path as messages show it: relative to the build context."""
    return os.path.relpath(request.dockerfile, request.context)


@dataclass(frozen=True)
class BuildOutput:
    """What a builder leaves: the pushed digest (Kaniko), or an OCI layout for the kit to push."""

    digest: str | None = None
    layout: Path | None = None


LineSink = Callable[[str], None]


class Builder(Protocol):
    name: str

    def available(self) -> bool:
        """Whether the builder's executable is on this machine."""

    def preflight(self, request: BuildRequest) -> None:
        """Refuse, before anything runs, a build this builder is known to reject (exit 2)."""

    def commands(self, request: BuildRequest, workdir: Path) -> list[list[str]]:
        """The argv lists ``build`` runs, in order (``--dry-run`` prints them)."""

    def build(
        self, request: BuildRequest, workdir: Path, docker_config: Path | None, log: LineSink
    ) -> BuildOutput:
        """Run the build; credentials only through the docker config directory given."""
