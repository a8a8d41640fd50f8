"""The ``local`` provider: podman runs the image by digest on this machine, on loopback.

The weights directory is mounted read-only at ``service.model_path``; the preview's facts are
container labels, so ``status`` and ``gc`` ask podman, not a state file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_kit.errors import ConfigError, EnvironmentFault, InputError
from pipeline_kit.preview.model import MANAGED_BY, MANAGER, PREVIEW, SCOPE, Preview, PreviewSpec

if TYPE_CHECKING:
    from pipeline_kit.adapters.podman import Podman
    from pipeline_kit.preview.settings import PreviewContext

CONF_CHOICES = ("auto", "relaxed", "system")
DEFAULT_STOP_TIMEOUT = "5s"
SYSTEMD_RUNNING = Path("/run/systemd/system")  # what sd_booted() checks
MAX_RUNROOT = 50  # podman refuses longer ones (its sockets live there)


def conf_mode(setting: str, environ: Mapping[str, str], systemd: bool) -> str:
    """``relaxed``, ``system`` or a path, from ``preview.local.containers_conf``.

    ``auto``: a ``CONTAINERS_CONF`` the user exported wins, and a machine booted with systemd
    (a workstation, a VM runner) keeps podman's own settings; anywhere else (a CI job in a
    container) podman's defaults fail, so the kit's relaxed file is used.
    """
    if setting != "auto":
        return setting
    if environ.get("CONTAINERS_CONF") or systemd:
        return "system"
    return "relaxed"


@dataclass(frozen=True)
class LocalSettings:
    containers_conf: str = "auto"
    runtime: str | None = None
    storage_driver: str | None = None
    root: str | None = None
    runroot: str | None = None
    stop_timeout: int = 5
    port: int | None = None

    @classmethod
    def from_section(cls, section: Mapping[str, Any], root: Path, where: str) -> LocalSettings:
        from pipeline_kit.config.durations import parse_duration

        def path(key: str) -> str | None:
            value = section.get(key)
            return str((root / str(value)).resolve()) if value else None

        return cls(
            containers_conf=str(section.get("containers_conf", "auto")),
            runtime=section.get("runtime"),
            storage_driver=section.get("storage_driver"),
            root=path("root"),
            runroot=path("runroot"),
            stop_timeout=parse_duration(
                str(section.get("stop_timeout", DEFAULT_STOP_TIMEOUT)),
                what=f"{where}: preview.local.stop_timeout",
            ),
            port=section.get("port"),
        )


class LocalProvider:
    name = "local"

    def _podman(self, ctx: PreviewContext) -> tuple[Podman, LocalSettings]:
        from pipeline_kit.adapters.podman import RELAXED_CONTAINERS_CONF, Podman, PodmanOptions

        config = ctx.config
        local = LocalSettings.from_section(
            ctx.settings.part("local"), config.root, config.where("preview", "local")
        )
        if local.runroot and len(local.runroot) > MAX_RUNROOT:
            raise ConfigError(
                f"{config.where('preview', 'local', 'runroot')}: preview.local.runroot: "
                f"{local.runroot} is {len(local.runroot)} characters; podman refuses more "
                f"than {MAX_RUNROOT}.",
                hint="Use a shorter path (e.g. under /tmp).",
            )
        mode = conf_mode(local.containers_conf, ctx.environ, SYSTEMD_RUNNING.is_dir())
        conf: Path | None = None
        runtime = local.runtime
        if mode == "relaxed":
            conf = ctx.workdir / "containers.conf"
            if not conf.exists():
                conf.write_text(RELAXED_CONTAINERS_CONF)
            runtime = runtime or "runc"  # crun fails where these settings are needed
        elif mode != "system":
            conf = (config.root / mode).resolve()
            if not conf.is_file():
                raise ConfigError(
                    f"{config.where('preview', 'local', 'containers_conf')}: "
                    f"preview.local.containers_conf: {conf} is not a file.",
                    hint=f"Give a containers.conf path, or one of: {', '.join(CONF_CHOICES)}.",
                )
        options = PodmanOptions(
            storage_driver=local.storage_driver,
            root=local.root,
            runroot=local.runroot,
            runtime=runtime,
            containers_conf=conf,
        )
        return Podman(options, ctx.environ), local

    def _scope(self, ctx: PreviewContext) -> dict[str, str]:
        return {MANAGED_BY: MANAGER, SCOPE: ctx.settings.scope}

    def _container_name(self, name: str) -> str:
        return f"pk-preview-{name}"

    def up(self, ctx: PreviewContext, spec: PreviewSpec) -> Preview:
        from pipeline_kit.adapters.podman import ContainerSpec
        from pipeline_kit.adapters.registry.client import is_plain_http
        from pipeline_kit.adapters.registry.credentials import (
            resolve_credential,
            write_docker_config,
        )
        from pipeline_kit.adapters.registry.references import ImageRef

        weights = spec.weights
        if weights is None:
            raise InputError(
                "preview: the local provider needs the weights directory.",
                hint="Give --weights DIR (or preview.weights); it is mounted read-only at "
                f"{ctx.service.model_path}.",
            )
        if not weights.is_dir():
            raise InputError(f"--weights {weights}: not a directory.", hint="Train or fetch first.")
        podman, local = self._podman(ctx)
        self.down(ctx, spec.name)  # a new push to the same ref replaces its preview
        host = ImageRef.parse(spec.image).registry
        credential = resolve_credential(host, ctx.environ)
        authfile = None
        if credential is not None:
            authfile = write_docker_config(ctx.workdir / "auth", {host: credential})
        container = ContainerSpec(
            name=self._container_name(spec.name),
            image=spec.image,
            container_port=ctx.service.port,
            host_port=spec.port if spec.port is not None else local.port,
            volumes=(f"{weights}:{ctx.service.model_path}:ro",),
            env={"MODEL_PATH": ctx.service.model_path},
            labels={**spec.labels(), **spec.annotations()},
            stop_timeout=local.stop_timeout,
            tls_verify=not is_plain_http(host, ctx.insecure_registries),
            authfile=authfile,
        )
        ctx.say(f"podman: starting {spec.image}")
        try:
            podman.run(container)
        except EnvironmentFault as exc:
            if "rlimit" in str(exc) or "cgroup" in str(exc):
                exc.hint = (
                    "podman's defaults cannot run here; set preview.local.containers_conf: "
                    "relaxed (and runtime: runc)."
                )
            raise
        address = podman.host_address(container.name, ctx.service.port)
        return Preview.from_spec(spec, self.name, f"http://{address}")

    def _find(self, ctx: PreviewContext, podman: Podman, name: str | None) -> list[dict[str, Any]]:
        labels = self._scope(ctx)
        if name is not None:
            labels[PREVIEW] = name
        return podman.containers(labels)

    def down(self, ctx: PreviewContext, name: str) -> bool:
        podman, _ = self._podman(ctx)
        ids = [str(c["Id"]) for c in self._find(ctx, podman, name)]
        podman.remove(ids)
        return bool(ids)

    def previews(self, ctx: PreviewContext) -> list[Preview]:
        podman, _ = self._podman(ctx)
        return [self._preview(ctx, c) for c in self._find(ctx, podman, None)]

    def _preview(self, ctx: PreviewContext, container: Mapping[str, Any]) -> Preview:
        url = None
        for port in container.get("Ports") or ():
            if port.get("container_port") == ctx.service.port and port.get("host_port"):
                url = f"http://{port.get('host_ip') or '127.0.0.1'}:{port['host_port']}"
        labels = {str(k): str(v) for k, v in (container.get("Labels") or {}).items()}
        return Preview.from_metadata(
            self.name, labels, url=url, state=str(container.get("State", "unknown"))
        )

    def find(self, ctx: PreviewContext, name: str) -> Preview | None:
        return next((p for p in self.previews(ctx) if p.name == name), None)

    def alive(self, ctx: PreviewContext, name: str) -> str | None:
        podman, _ = self._podman(ctx)
        found = self._find(ctx, podman, name)
        if not found:
            return "the container is gone"
        state = str(found[0].get("State"))
        if state == "running":
            return None
        return f"the container is {state} (exit code {found[0].get('ExitCode')})"

    def logs(self, ctx: PreviewContext, name: str, lines: int) -> str:
        podman, _ = self._podman(ctx)
        found = self._find(ctx, podman, name)
        return podman.logs(str(found[0]["Id"]), lines) if found else ""

    @contextlib.contextmanager
    def reach(self, ctx: PreviewContext, preview: Preview) -> Iterator[str]:
        assert preview.url is not None
        yield preview.url
