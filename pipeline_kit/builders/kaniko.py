"""Kaniko: the executor builds and pushes in one run, inside its own container.

Kaniko wipes the container's root filesystem between stages, except ``/kaniko``, mounts and
ignored paths. The kit therefore lives under ``/kaniko`` in the builder image and keeps its
working files (docker config, digest file) there too; see the README's "Kaniko jobs" section.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline_kit.adapters.process import stream
from pipeline_kit.builders.base import BuildFailed, BuildOutput, BuildRequest, LineSink

KANIKO_EXECUTOR = Path("/kaniko/executor")


def executor_path() -> str | None:
    if KANIKO_EXECUTOR.is_file() and os.access(KANIKO_EXECUTOR, os.X_OK):
        return str(KANIKO_EXECUTOR)
    return shutil.which("executor")


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
    if not request.compressed_caching:
        argv.append("--compressed-caching=false")
    if request.target:
        argv.append(f"--target={request.target}")
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


class KanikoBuilder:
    name = "kaniko"

    def available(self) -> bool:
        return executor_path() is not None

    def commands(self, request: BuildRequest, workdir: Path) -> list[list[str]]:
        return [executor_argv(request, workdir / "digest", executor_path() or "/kaniko/executor")]

    def build(
        self, request: BuildRequest, workdir: Path, docker_config: Path | None, log: LineSink
    ) -> BuildOutput:
        digest_file = workdir / "digest"
        (argv,) = self.commands(request, workdir)
        env = {"DOCKER_CONFIG": str(docker_config)} if docker_config else {}
        code, tail = stream(argv, on_line=log, env=env)
        if code != 0:
            raise BuildFailed(
                f"Kaniko failed with exit code {code}: {tail.splitlines()[-1] if tail else ''}",
                hint="The build log above shows the failing instruction.",
            )
        digest = digest_file.read_text().strip() if digest_file.is_file() else ""
        if not digest.startswith("sha256:"):
            raise BuildFailed(
                f"Kaniko reported success but wrote no digest to {digest_file}.",
                hint="Check the executor version (it needs --digest-file).",
            )
        return BuildOutput(digest=digest)
