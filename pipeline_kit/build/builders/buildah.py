"""buildah: daemonless builds on laptops, under act and in the tests.

buildah builds with its layer cache in the same cache repository Kaniko uses, then writes the
image to an OCI layout; the kit pushes that layout itself, so retries, cross-repository mounts
and "tags last" are the kit's, whatever builder made the image.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from pipeline_kit.adapters.process import run, stream
from pipeline_kit.build.builders.base import (
    BuildFailed,
    BuildOutput,
    BuildRequest,
    LineSink,
    dockerfile_shown,
    local_machine_runs,
    refuse_several_platforms,
    refuse_unrunnable_platforms,
    secret_flags,
)
from pipeline_kit.dockerfile.copy_link import with_link_flag
from pipeline_kit.dockerfile.stages import Instruction, parse_dockerfile
from pipeline_kit.errors import InputError

LOCAL_NAME = "localhost/pipeline-kit/build"
# buildah v1.41.0 added COPY/ADD --link; before it any --link flag fails the build at that step.
LINK_ACCEPTED_FROM = (1, 41)


def parse_version(text: str) -> tuple[int, ...] | None:
    """``buildah version 1.28.2 (image-spec ...)`` -> (1, 28, 2)."""
    found = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part) for part in found.groups() if part is not None) if found else None


def global_flags(request: BuildRequest) -> list[str]:
    flags: list[str] = []
    for option in ("storage-driver", "root", "runroot"):
        if request.storage.get(option):
            flags.append(f"--{option}={request.storage[option]}")
    return flags


def local_name(request: BuildRequest) -> str:
    return f"{LOCAL_NAME}:{request.tags[-1]}" if request.tags else LOCAL_NAME


def bud_argv(
    request: BuildRequest, authfile: Path | None, workdir: Path | None = None
) -> list[str]:
    """``buildah bud`` for ``request`` (a pure function, tested as a table); the secrets' files
    are in ``workdir``, the build's private directory."""
    argv = [
        "buildah",
        *global_flags(request),
        "bud",
        "--layers",
        f"--isolation={request.isolation}",
    ]
    argv += [f"--file={request.dockerfile}"]
    if request.target:
        argv.append(f"--target={request.target}")
    if request.platform:
        argv.append(f"--platform={request.platform}")
    argv += [f"--build-arg={name}={value}" for name, value in sorted(request.build_args.items())]
    argv += [f"--label={name}={value}" for name, value in sorted(request.labels.items())]
    argv.append(f"--cache-from={request.cache_repo}")
    if request.push_cache:
        argv.append(f"--cache-to={request.cache_repo}")
    if request.registry in request.insecure_hosts:
        # bud talks to the cache repository (and maybe FROM) over plain HTTP.
        argv.append("--tls-verify=false")
    argv += [f"--volume={volume}" for volume in request.volumes]
    if request.secrets:
        assert workdir is not None, "the secrets' files are in the build's working directory"
        argv += secret_flags(request, workdir)
    if authfile is not None:
        argv.append(f"--authfile={authfile}")
    argv += [f"--tag={local_name(request)}", str(request.context)]
    return argv


def push_argv(request: BuildRequest, layout: Path, digest_file: Path) -> list[str]:
    return [
        "buildah",
        *global_flags(request),
        "push",
        f"--digestfile={digest_file}",
        local_name(request),
        f"oci:{layout}",
    ]


class BuildahBuilder:
    name = "buildah"

    def available(self) -> bool:
        return shutil.which("buildah") is not None

    def version(self) -> tuple[int, ...] | None:
        if not self.available():
            return None
        return parse_version(run(["buildah", "--version"], check=False, timeout=30).stdout.decode())

    def preflight(self, request: BuildRequest) -> None:
        """A ``--link`` in a stage the build runs fails buildah < 1.41 only at that step: say so
        before anything is built. One platform per run."""
        refuse_several_platforms(request, "buildah")
        refuse_unrunnable_platforms(request, "buildah", local_machine_runs)
        linked = next(_link_flags(request), None)
        if linked is None:
            return
        version = self.version()
        if version is None or version >= LINK_ACCEPTED_FROM:
            return
        shown = ".".join(map(str, version))
        raise InputError(
            f"{dockerfile_shown(request)}:{linked.line}: {linked.cmd} --link: buildah {shown} "
            "rejects "
            "--link (buildah accepts it from 1.41) and would fail at that step, after building "
            "the steps before it.",
            hint="Build with --builder buildkit or kaniko, upgrade buildah to 1.41 or later, or "
            "drop --link from the Dockerfile.",
        )

    def commands(self, request: BuildRequest, workdir: Path) -> list[list[str]]:
        return [
            bud_argv(request, workdir / "docker" / "config.json", workdir),
            push_argv(request, workdir / "layout", workdir / "digest"),
        ]

    def build(
        self, request: BuildRequest, workdir: Path, docker_config: Path | None, log: LineSink
    ) -> BuildOutput:
        authfile = docker_config / "config.json" if docker_config else None
        layout, digest_file = workdir / "layout", workdir / "digest"
        bud = bud_argv(request, authfile, workdir)
        for argv in (bud, push_argv(request, layout, digest_file)):
            code, tail = stream(argv, on_line=log)
            if code != 0:
                last = tail.splitlines()[-1] if tail else ""
                raise BuildFailed(
                    f"buildah {argv[len(global_flags(request)) + 1]} failed with exit code "
                    f"{code}: {last}",
                    hint="The build log above shows the failing instruction.",
                )
        return BuildOutput(layout=layout)


def _link_flags(request: BuildRequest) -> Iterator[Instruction]:
    """COPY/ADD with a --link flag in the stages a build of the target runs (buildah skips
    the others)."""
    graph = parse_dockerfile(
        request.dockerfile.read_text(encoding="utf-8"),
        source=dockerfile_shown(request),
        build_args=request.build_args,
        platform=request.platform,
    )
    target = graph.target(request.target)
    return with_link_flag(graph.stages[i] for i in graph.upstream(target.index))
