"""Kaniko: the executor builds and pushes in one run, inside its own container.

Kaniko wipes the container's root filesystem between stages, except ``/kaniko``, mounts and
ignored paths: a temporary directory under ``/tmp`` is gone by the time the executor pushes.
The kit therefore lives under ``/kaniko`` in the builder image and, inside a Kaniko container,
keeps the files the executor reads late (docker config) or writes last (digest file) in a
private directory under ``/kaniko`` too; see docs/kaniko.md, "Kaniko jobs".

The executor run is ``/kaniko/executor`` and nothing else: outside its own container Kaniko
unpacks images over ``/`` and deletes ``/``, so an ``executor`` that happens to be on PATH (on
a developer's machine, a shared runner) is never taken for it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline_kit.adapters.process import stream
from pipeline_kit.build.builders.base import (
    BuildFailed,
    BuildOutput,
    BuildRequest,
    LineSink,
    dockerfile_shown,
    local_machine_runs,
    refuse_several_platforms,
    refuse_unrunnable_platforms,
)
from pipeline_kit.dockerfile.secret_mounts import SecretMount, secret_mounts
from pipeline_kit.dockerfile.stages import parse_dockerfile
from pipeline_kit.errors import ConfigError, EnvironmentFault, InputError

KANIKO_HOME = Path("/kaniko")
KANIKO_EXECUTOR = KANIKO_HOME / "executor"


def executor_argv(
    request: BuildRequest, digest_file: Path, executor: str = "executor"
) -> list[str]:
    """The executor's command line for ``request`` (a pure function, tested as a table)."""
    argv = [
        executor,
        f"--context=dir://{request.context}",
        f"--dockerfile={request.dockerfile}",
    ]
    argv += [f"--destination={ref}" for ref in request.references()]
    argv += [
        "--cache=true",
        f"--cache-repo={request.cache_repo}",
        f"--cache-ttl={request.cache_ttl}",
        f"--cache-copy-layers={'true' if request.cache_copy_layers else 'false'}",
        "--snapshot-mode=redo",
        "--skip-unused-stages=true",
    ]
    if not request.push_cache:
        argv.append("--no-push-cache")
    if not request.compressed_caching:
        argv.append("--compressed-caching=false")
    if request.target:
        argv.append(f"--target={request.target}")
    if request.platform:
        argv.append(f"--custom-platform={request.platform}")
    argv += [f"--build-arg={name}={value}" for name, value in sorted(request.build_args.items())]
    argv += [f"--label={name}={value}" for name, value in sorted(request.labels.items())]
    argv += [
        f"--digest-file={digest_file}",
        f"--push-retry={request.push_retry}",
        f"--image-download-retry={request.download_retry}",
    ]
    for host in sorted(request.insecure_hosts):
        argv.append(f"--insecure-registry={host}")
    if request.registry in request.insecure_hosts:
        # The destination and cache repo are on a plain-HTTP registry: push and pull over HTTP.
        argv += ["--insecure", "--insecure-pull"]
    return argv


def read_digest(digest_file: Path) -> str:
    """The digest the executor wrote with ``--digest-file``."""
    digest = digest_file.read_text().strip() if digest_file.is_file() else ""
    if not digest.startswith("sha256:"):
        # The executor said it succeeded: the change is not at fault, the builder is (exit 3).
        raise EnvironmentFault(
            f"Kaniko reported success but wrote no digest to {digest_file}.",
            hint="Check the executor version (it needs --digest-file).",
        )
    return digest


@dataclass(frozen=True)
class ExecutorFiles:
    """Where the executor finds the docker config and writes the digest, for one run."""

    digest: Path
    docker_config: Path | None  # a directory holding config.json, as DOCKER_CONFIG names it


class KanikoBuilder:
    name = "kaniko"

    def __init__(self, home: Path = KANIKO_HOME) -> None:
        self.home = home  # the directory Kaniko never wipes (its container's /kaniko)

    def available(self) -> bool:
        return _runnable(self.executor())

    def preflight(self, request: BuildRequest) -> None:
        """Build secrets are refused before the executor starts. Upstream Kaniko (archived at
        1.24) has no secret mounts and runs such a step without the file; forks that take
        ``--secret`` still run every RUN step in the job's own container, where a step reads
        what the job holds, so no mount keeps a value apart. ``COPY --link`` builds.
        One platform per run."""
        refuse_several_platforms(request, "Kaniko")
        if request.secrets:
            names = ", ".join(secret.id for secret in request.secrets)
            raise ConfigError(
                f"secrets ({names}): Kaniko builds get no build secrets (RUN --mount=type=secret).",
                hint="Build with --builder buildkit or buildah (build.builder in the config), or "
                "drop `secrets` from the config.",
            )
        mount = next(_secret_mounts(request), None)
        if mount is not None:
            raise InputError(
                f"{dockerfile_shown(request)}:"
                f"{mount.instruction.line}: RUN --mount=type=secret,id={mount.id}: Kaniko "
                "builds get no build secrets; the step would run without the file.",
                hint="Build with --builder buildkit or buildah, with the secret in the "
                "config's `secrets`.",
            )
        # The executor runs RUN steps in the container the kit runs in.
        refuse_unrunnable_platforms(request, "Kaniko", local_machine_runs)

    def executor(self) -> str:
        return str(self.home / "executor")

    def commands(self, request: BuildRequest, workdir: Path) -> list[list[str]]:
        # Inside a Kaniko container the run gets a fresh directory under /kaniko (see build).
        files = self.home / "pipeline-kit-build-XXXXXXXX" if self.home.is_dir() else workdir
        return [executor_argv(request, files / "digest", self.executor())]

    def build(
        self, request: BuildRequest, workdir: Path, docker_config: Path | None, log: LineSink
    ) -> BuildOutput:
        executor = self.executor()
        if not _runnable(executor):
            raise EnvironmentFault(
                f"Kaniko's executor is not at {executor}: the kit runs Kaniko only inside its "
                "own container, never an `executor` found on PATH.",
                hint="Run the build in the kit's builder image or Kaniko's own image (the "
                "GitLab template's Kaniko job does), or choose --builder buildah or buildkit.",
            )
        with self._executor_files(workdir, docker_config) as files:
            argv = executor_argv(request, files.digest, executor)
            env = {"DOCKER_CONFIG": str(files.docker_config)} if files.docker_config else {}
            code, tail = self.run_executor(argv, env, log)
            if code != 0:
                raise BuildFailed(
                    f"Kaniko failed with exit code {code}: {tail.splitlines()[-1] if tail else ''}",
                    hint="The build log above shows the failing instruction.",
                )
            return BuildOutput(digest=read_digest(files.digest))

    def run_executor(self, argv: list[str], env: dict[str, str], log: LineSink) -> tuple[int, str]:
        return stream(argv, on_line=log, env=env)

    @contextlib.contextmanager
    def _executor_files(self, workdir: Path, docker_config: Path | None) -> Iterator[ExecutorFiles]:
        if not self.home.is_dir():
            yield ExecutorFiles(workdir / "digest", docker_config)
            return
        # A private 0700 directory under /kaniko, so the wipe between stages spares it.
        directory = Path(tempfile.mkdtemp(prefix="pipeline-kit-build-", dir=self.home))
        try:
            own_config = None
            if docker_config is not None:
                own_config = directory / "docker"
                own_config.mkdir(mode=0o700)
                shutil.copy2(docker_config / "config.json", own_config / "config.json")
            yield ExecutorFiles(directory / "digest", own_config)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def _runnable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _secret_mounts(request: BuildRequest) -> Iterator[SecretMount]:
    """The secret mounts in the stages a build of the target runs."""
    graph = parse_dockerfile(
        request.dockerfile.read_text(encoding="utf-8"),
        source=dockerfile_shown(request),
        build_args=request.build_args,
        platform=request.platform,
    )
    target = graph.target(request.target)
    return secret_mounts(graph.stages[i] for i in graph.upstream(target.index))
