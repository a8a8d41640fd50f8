"""BuildKit: ``buildctl`` against a running buildkitd, or ``docker buildx`` where one answers.

BuildKit builds and pushes in one run: one image output names every tag, and the pushed digest
comes from the metadata file (an OCI image index's, when the request names several platforms).
Its layer cache is a single cache manifest in the kit's cache repository (``<cache>:buildkit``,
or ``buildkit-<target>``), exported with ``mode=max`` so the layers of every stage, not only
the final one, are there for the next build to import.

``buildctl`` reads the daemon address from ``BUILDKIT_HOST`` itself, and both clients read
registry credentials from the docker config that ``DOCKER_CONFIG`` names.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from pipeline_kit.adapters.process import run, stream
from pipeline_kit.build.builders.base import (
    BuildFailed,
    BuildOutput,
    BuildRequest,
    LineSink,
    refuse_unrunnable_platforms,
    secret_flags,
)
from pipeline_kit.dockerfile.platform import Platform
from pipeline_kit.errors import EnvironmentFault

CACHE_TAG = "buildkit"
PROBE_TIMEOUT_S = 10


def cache_ref(request: BuildRequest) -> str:
    """The cache manifest: one per target, so two targets do not overwrite each other's."""
    tag = f"{CACHE_TAG}-{request.target}" if request.target else CACHE_TAG
    return f"{request.cache_repo}:{tag.lower()}"


def _insecure(host: str, request: BuildRequest) -> str:
    return ",registry.insecure=true" if host in request.insecure_hosts else ""


def output_spec(request: BuildRequest) -> str:
    # One image exporter for every tag; the name list is a quoted CSV field.
    names = ",".join(request.references())
    return f'type=image,"name={names}",push=true' + _insecure(request.registry, request)


def cache_specs(request: BuildRequest) -> tuple[str, str]:
    """(import, export) cache specs for the registry cache."""
    insecure = _insecure(request.cache_repo.split("/", 1)[0], request)
    ref = cache_ref(request)
    return f"type=registry,ref={ref}{insecure}", f"type=registry,ref={ref},mode=max{insecure}"


def platform_list(request: BuildRequest) -> str | None:
    """The platforms as BuildKit takes them: several, comma-separated, make an index."""
    return ",".join(request.platforms) or request.platform


def buildctl_argv(request: BuildRequest, metadata_file: Path) -> list[str]:
    """``buildctl build`` for ``request`` (a pure function, tested as a table)."""
    cache_from, cache_to = cache_specs(request)
    argv = [
        "buildctl",
        "build",
        "--progress=plain",
        "--frontend=dockerfile.v0",
        f"--local=context={request.context}",
        f"--local=dockerfile={request.dockerfile.parent}",
        f"--opt=filename={request.dockerfile.name}",
    ]
    if request.target:
        argv.append(f"--opt=target={request.target}")
    if platform := platform_list(request):
        argv.append(f"--opt=platform={platform}")
    argv += [
        f"--opt=build-arg:{name}={value}" for name, value in sorted(request.build_args.items())
    ]
    argv += [f"--opt=label:{name}={value}" for name, value in sorted(request.labels.items())]
    argv += secret_flags(request, metadata_file.parent)  # the build's private directory
    argv += [
        f"--output={output_spec(request)}",
        f"--import-cache={cache_from}",
        *([f"--export-cache={cache_to}"] if request.push_cache else []),
        f"--metadata-file={metadata_file}",
    ]
    return argv


def buildx_argv(request: BuildRequest, metadata_file: Path) -> list[str]:
    """``docker buildx build`` for ``request`` (a pure function, tested as a table)."""
    cache_from, cache_to = cache_specs(request)
    argv = [
        "docker",
        "buildx",
        "build",
        "--progress=plain",
        f"--file={request.dockerfile}",
    ]
    if request.target:
        argv.append(f"--target={request.target}")
    if platform := platform_list(request):
        argv.append(f"--platform={platform}")
    argv += [f"--build-arg={name}={value}" for name, value in sorted(request.build_args.items())]
    argv += [f"--label={name}={value}" for name, value in sorted(request.labels.items())]
    argv += secret_flags(request, metadata_file.parent)
    argv += [
        f"--output={output_spec(request)}",
        f"--cache-from={cache_from}",
        *([f"--cache-to={cache_to}"] if request.push_cache else []),
        f"--metadata-file={metadata_file}",
        # One image manifest, as Kaniko and buildah push: no attestation index around it.
        "--provenance=false",
        str(request.context),
    ]
    return argv


def buildx_env(docker_config: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for buildx with the kit's docker config.

    ``DOCKER_CONFIG`` also holds buildx's builder instances (``buildx/``) and user-installed CLI
    plugins (``cli-plugins/``); pointing it at the kit's directory must not lose the builder
    that docker/setup-buildx-action created, so ``BUILDX_CONFIG`` keeps naming the user's (and
    ``link_cli_plugins`` makes the plugins visible from the kit's directory).
    """
    if docker_config is None:
        return {}
    return {
        "DOCKER_CONFIG": str(docker_config),
        "BUILDX_CONFIG": environ.get("BUILDX_CONFIG") or str(user_docker_dir(environ) / "buildx"),
    }


def user_docker_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("DOCKER_CONFIG") or Path(environ.get("HOME", "~")) / ".docker")


def link_cli_plugins(docker_config: Path, environ: Mapping[str, str]) -> None:
    """Docker finds plugins such as buildx in ``$DOCKER_CONFIG/cli-plugins`` (among others)."""
    plugins = user_docker_dir(environ) / "cli-plugins"
    link = docker_config / "cli-plugins"
    if plugins.is_dir() and not link.exists():
        link.symlink_to(plugins, target_is_directory=True)


def read_metadata_digest(metadata_file: Path) -> str:
    """``containerimage.digest`` from the metadata file BuildKit wrote."""
    try:
        digest = str(json.loads(metadata_file.read_text()).get("containerimage.digest", ""))
    except (OSError, ValueError, AttributeError):
        digest = ""
    if not digest.startswith("sha256:"):
        # The build succeeded: the change is not at fault, the builder is (exit 3).
        raise EnvironmentFault(
            f"BuildKit reported success but wrote no image digest to {metadata_file}.",
            hint="Check that the build pushes an image (--output type=image,push=true).",
        )
    return digest


class BuildkitBuilder:
    name = "buildkit"

    def __init__(self) -> None:
        # (BUILDKIT_HOST, PATH) -> (client, buildctl's workers as JSON)
        self._clients: dict[tuple[str, str], tuple[str | None, str]] = {}

    def client(self) -> str | None:
        """``buildctl`` when a daemon answers it, else ``buildx`` when docker has it, else None.
        A build asks once: the answer is kept for the daemon address and ``PATH`` it was for."""
        key = (os.environ.get("BUILDKIT_HOST", ""), os.environ.get("PATH", ""))
        if key not in self._clients:
            self._clients[key] = self._find_client()
        return self._clients[key][0]

    def _find_client(self) -> tuple[str | None, str]:
        """The client, and for ``buildctl`` its daemon's workers as JSON (one call answers
        both: whether a daemon answers, and what it runs)."""
        if shutil.which("buildctl"):
            argv = ["buildctl", "debug", "workers", "--format", "{{json .}}"]
            try:
                done = run(argv, check=False, timeout=PROBE_TIMEOUT_S)
            except EnvironmentFault:
                done = None
            if done is not None and done.returncode == 0:
                return "buildctl", done.stdout.decode(errors="replace")
        if shutil.which("docker") and _answers(["docker", "buildx", "version"]):
            return "buildx", ""
        return None, ""

    def available(self) -> bool:
        return self.client() is not None

    def preflight(self, request: BuildRequest) -> None:
        """BuildKit parses the Dockerfile with the same parser the kit uses. A RUN step of a
        platform the daemon's workers do not list (natively, or through the emulators the
        daemon found at its start) is refused before the build. With ``docker buildx`` the
        builder's platforms are not asked for, and the build finds out."""
        listed: list[frozenset[tuple[str, str]] | None] = []

        def runs(platform: Platform) -> bool | None:
            if not listed:  # asked once, and only for a build with a RUN step
                listed.append(self.worker_platforms())
            known = listed[0]
            return None if known is None else (platform.os, platform.arch) in known

        refuse_unrunnable_platforms(request, "BuildKit", runs, where="the BuildKit daemon")

    def worker_platforms(self) -> frozenset[tuple[str, str]] | None:
        """(os, architecture) of every platform the daemon's workers run, or None when no
        daemon answers ``buildctl``."""
        if self.client() != "buildctl":
            return None
        key = (os.environ.get("BUILDKIT_HOST", ""), os.environ.get("PATH", ""))
        return parse_worker_platforms(self._clients[key][1])

    def commands(self, request: BuildRequest, workdir: Path) -> list[list[str]]:
        return [self._argv(self.client() or "buildctl", request, workdir / "metadata.json")]

    def build(
        self, request: BuildRequest, workdir: Path, docker_config: Path | None, log: LineSink
    ) -> BuildOutput:
        client = self.client()
        if client is None:
            raise EnvironmentFault(
                "BuildKit does not answer: no buildkitd at BUILDKIT_HOST for buildctl, and no "
                "`docker buildx`.",
                hint="Start buildkitd and set BUILDKIT_HOST (unix:///run/buildkit/buildkitd.sock "
                "by default), or install Docker's buildx plugin.",
            )
        metadata_file = workdir / "metadata.json"
        argv = self._argv(client, request, metadata_file)
        if client == "buildx":
            env = buildx_env(docker_config, os.environ)
            if docker_config is not None:
                link_cli_plugins(docker_config, os.environ)
        else:
            env = {"DOCKER_CONFIG": str(docker_config)} if docker_config else {}
        code, tail = stream(argv, on_line=log, env=env)
        if code != 0:
            raise BuildFailed(
                f"BuildKit ({client}) failed with exit code {code}: {_last_error(tail)}",
                hint="The build log above shows the failing instruction.",
            )
        return BuildOutput(digest=read_metadata_digest(metadata_file))

    @staticmethod
    def _argv(client: str, request: BuildRequest, metadata_file: Path) -> list[str]:
        if client == "buildx":
            return buildx_argv(request, metadata_file)
        return buildctl_argv(request, metadata_file)


def parse_worker_platforms(text: str) -> frozenset[tuple[str, str]] | None:
    """The (os, architecture) pairs ``buildctl debug workers --format '{{json .}}'`` lists."""
    try:
        workers = json.loads(text)
        return frozenset(
            (str(p["os"]), str(p["architecture"]))
            for worker in workers
            for p in worker.get("platforms") or ()
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _answers(argv: list[str]) -> bool:
    try:
        return run(argv, check=False, timeout=PROBE_TIMEOUT_S).returncode == 0
    except EnvironmentFault:
        return False


def _last_error(tail: str) -> str:
    lines = [line for line in tail.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or "ERROR" in line]
    return (errors or lines or [""])[-1]
