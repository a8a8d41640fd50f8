"""podman: runs an image by digest on this machine (the local preview environment).

Command lines are pure functions (tested as tables); ``Podman`` runs them through the one
subprocess wrapper. Credentials reach podman only through an authfile, never argv.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline_kit.adapters.process import CommandFailed, run

# Where podman's defaults cannot run (a CI container: no systemd, hard rlimits below podman's
# default ulimits), these two settings can; runc is the runtime that works there.
RELAXED_CONTAINERS_CONF = """\
# Written by pipeline-kit for podman where its defaults cannot run (no systemd, low rlimits).
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
"""


@dataclass(frozen=True)
class PodmanOptions:
    """Global flags and the configuration file every podman call of a preview shares."""

    storage_driver: str | None = None
    root: str | None = None
    runroot: str | None = None
    runtime: str | None = None
    containers_conf: Path | None = None  # None: podman's own configuration


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str  # registry/repository@sha256:...
    container_port: int
    host_port: int | None = None  # None: podman picks a free one
    volumes: tuple[str, ...] = ()  # host:container[:options]
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_timeout: int = 10
    tls_verify: bool = True
    authfile: Path | None = None


def global_flags(options: PodmanOptions) -> list[str]:
    flags = []
    for flag, value in (
        ("--storage-driver", options.storage_driver),
        ("--root", options.root),
        ("--runroot", options.runroot),
        ("--runtime", options.runtime),
    ):
        if value:
            flags.append(f"{flag}={value}")
    return flags


def run_argv(options: PodmanOptions, spec: ContainerSpec) -> list[str]:
    """``podman run --detach`` of ``spec`` (a pure function, tested as a table)."""
    argv = ["podman", *global_flags(options), "run", "--detach", f"--name={spec.name}"]
    argv.append("--pull=missing")  # a digest never changes: pull once
    if not spec.tls_verify:
        argv.append("--tls-verify=false")
    if spec.authfile is not None:
        argv.append(f"--authfile={spec.authfile}")
    host_port = spec.host_port if spec.host_port is not None else ""
    argv.append(f"--publish=127.0.0.1:{host_port}:{spec.container_port}")
    argv += [f"--volume={volume}" for volume in spec.volumes]
    argv += [f"--env={name}={value}" for name, value in sorted(spec.env.items())]
    argv += [f"--label={name}={value}" for name, value in sorted(spec.labels.items())]
    # Recorded with the container, so every later stop (down, gc) honours it.
    argv.append(f"--stop-timeout={spec.stop_timeout}")
    argv.append(spec.image)
    return argv


def ps_argv(options: PodmanOptions, labels: Mapping[str, str]) -> list[str]:
    """Every container (running or not) carrying all ``labels``."""
    filters = [f"--filter=label={name}={value}" for name, value in sorted(labels.items())]
    return ["podman", *global_flags(options), "ps", "--all", *filters, "--format=json"]


def rm_argv(options: PodmanOptions, ids: Sequence[str]) -> list[str]:
    return ["podman", *global_flags(options), "rm", "--force", "--ignore", *ids]


def port_argv(options: PodmanOptions, name: str, container_port: int) -> list[str]:
    return ["podman", *global_flags(options), "port", name, f"{container_port}/tcp"]


def logs_argv(options: PodmanOptions, name: str, lines: int) -> list[str]:
    return ["podman", *global_flags(options), "logs", f"--tail={lines}", name]


class Podman:
    def __init__(self, options: PodmanOptions, environ: Mapping[str, str] | None = None) -> None:
        self.options = options
        self.env = dict(environ or {})
        if options.containers_conf:
            self.env["CONTAINERS_CONF"] = str(options.containers_conf)

    def _run(self, argv: list[str], check: bool = True) -> str:
        return run(argv, env=self.env, check=check).stdout.decode(errors="replace")

    def run(self, spec: ContainerSpec) -> str:
        """Start ``spec``; returns the container id. A container that failed to start is
        removed (podman leaves it behind in the Created state): found by all of its labels,
        never by name, which may belong to a container that made this run fail."""
        try:
            return self._run(run_argv(self.options, spec)).strip().splitlines()[-1]
        except CommandFailed:
            if spec.labels:
                leftovers = [str(c["Id"]) for c in self.containers(spec.labels)]
                if leftovers:
                    self._run(rm_argv(self.options, leftovers), check=False)
            raise

    def containers(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        found = json.loads(self._run(ps_argv(self.options, labels)) or "[]")
        return [c for c in found if isinstance(c, dict)]

    def remove(self, ids: Sequence[str]) -> None:
        if ids:
            self._run(rm_argv(self.options, ids))

    def host_address(self, name: str, container_port: int) -> str:
        """``127.0.0.1:PORT`` where the container's port is published."""
        return self._run(port_argv(self.options, name, container_port)).strip().splitlines()[0]

    def logs(self, name: str, lines: int) -> str:
        proc = run(logs_argv(self.options, name, lines), env=self.env, check=False)
        return (proc.stdout + proc.stderr).decode(errors="replace")
