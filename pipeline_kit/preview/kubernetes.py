"""The ``kubernetes`` provider: a namespace per preview, the production manifests inside it.

The Deployment and Service are ``render kubernetes``'s own (probes sized from the load time,
weights from a PVC or an initContainer), so the preview runs what production would. The
namespace carries the preview's labels; ``down`` and ``gc`` delete by label, never by name
alone, so nothing outside the scope can be touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline_kit.errors import ExitCode, KitError
from pipeline_kit.preview.model import MANAGED_BY, MANAGER, PREVIEW, SCOPE, Preview, PreviewSpec

if TYPE_CHECKING:
    from pipeline_kit.adapters.kubectl import Kubectl
    from pipeline_kit.config.service import ServiceSpec
    from pipeline_kit.preview.settings import PreviewContext
    from pipeline_kit.render.kubernetes import KubernetesSpec

# Scheduling and the image pull come before the startup probe's budget starts.
ROLLOUT_ALLOWANCE_S = 300
SERVICE_PORT = 80  # the rendered Service's port


class RolloutFailed(KitError):
    """The preview did not become ready: a verdict against the image, like a failed gate."""

    exit_code = ExitCode.VERDICT


@dataclass(frozen=True)
class KubernetesPreviewSettings:
    url: str | None = None  # a template: {name}, {namespace}, {service}
    context: str | None = None
    rollout_timeout: int | None = None  # seconds; default from service.max_load_time
    replicas: int = 1

    @classmethod
    def from_section(cls, section: Mapping[str, Any], where: str) -> KubernetesPreviewSettings:
        from pipeline_kit.config.durations import parse_duration

        timeout = section.get("rollout_timeout")
        return cls(
            url=section.get("url"),
            context=section.get("context"),
            rollout_timeout=parse_duration(
                str(timeout), what=f"{where}: preview.kubernetes.rollout_timeout"
            )
            if timeout
            else None,
            replicas=int(section.get("replicas", 1)),
        )


def namespace_manifest(spec: PreviewSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": spec.name, "labels": spec.labels(), "annotations": spec.annotations()},
    }


def preview_workload(spec: PreviewSpec, base: KubernetesSpec, replicas: int) -> KubernetesSpec:
    """The ``kubernetes`` section's workload, in the preview's namespace."""
    return dataclasses.replace(
        base, namespace=spec.name, replicas=replicas, labels={**base.labels, PREVIEW: spec.name}
    )


def preview_manifests(
    spec: PreviewSpec, service: ServiceSpec, workload: KubernetesSpec
) -> list[dict[str, Any]]:
    from pipeline_kit.render.kubernetes import render

    return [namespace_manifest(spec), *render(spec.image, service, workload)]


def rollout_budget(service: ServiceSpec, workload: KubernetesSpec) -> int:
    """Seconds ``kubectl rollout status`` waits: the load budget the startup probe allows,
    the time a pod must stay ready, and an allowance for scheduling and the pull."""
    return service.max_load_seconds + workload.min_ready_seconds + ROLLOUT_ALLOWANCE_S


def preview_url(template: str | None, name: str, workload: KubernetesSpec) -> str | None:
    if not template:
        return None
    return template.format(name=name, namespace=name, service=workload.name)


class KubernetesProvider:
    name = "kubernetes"

    def _open(
        self, ctx: PreviewContext
    ) -> tuple[Kubectl, KubernetesPreviewSettings, KubernetesSpec]:
        from pipeline_kit.adapters.kubectl import Kubectl
        from pipeline_kit.render.kubernetes import KubernetesSpec

        where = ctx.config.where("preview", "kubernetes")
        settings = KubernetesPreviewSettings.from_section(ctx.settings.part("kubernetes"), where)
        return (
            Kubectl(settings.context, ctx.environ),
            settings,
            KubernetesSpec.from_config(ctx.config),
        )

    def _scope(self, ctx: PreviewContext, name: str | None = None) -> dict[str, str]:
        labels = {MANAGED_BY: MANAGER, SCOPE: ctx.settings.scope}
        if name is not None:
            labels[PREVIEW] = name
        return labels

    def up(self, ctx: PreviewContext, spec: PreviewSpec) -> Preview:
        import yaml

        from pipeline_kit.adapters.process import CommandFailed

        kubectl, settings, base = self._open(ctx)
        workload = preview_workload(spec, base, settings.replicas)
        manifests = preview_manifests(spec, ctx.service, workload)
        ctx.say(f"kubectl: applying namespace {spec.name} with {spec.image}")
        kubectl.apply(yaml.safe_dump_all(manifests, sort_keys=False, explicit_start=True))
        budget = settings.rollout_timeout or rollout_budget(ctx.service, workload)
        ctx.say(f"kubectl: waiting up to {budget}s for deployment/{workload.name} to be ready")
        try:
            kubectl.rollout_status(spec.name, workload.name, budget)
        except CommandFailed as exc:
            raise RolloutFailed(
                f"deployment/{workload.name} in namespace {spec.name} did not become ready "
                f"within {budget}s: {exc.stderr.strip()[-500:]}",
                hint=f"See `kubectl describe deployment/{workload.name} -n {spec.name}`.",
            ) from None
        return Preview.from_spec(spec, self.name, preview_url(settings.url, spec.name, workload))

    def down(self, ctx: PreviewContext, name: str) -> bool:
        kubectl, _, _ = self._open(ctx)
        return bool(kubectl.delete_namespaces(self._scope(ctx, name)))

    def previews(self, ctx: PreviewContext) -> list[Preview]:
        kubectl, settings, base = self._open(ctx)
        found = []
        for item in kubectl.namespaces(self._scope(ctx)):
            metadata = item.get("metadata") or {}
            name = str(metadata.get("name", "?"))
            phase = str((item.get("status") or {}).get("phase", "Active")).lower()
            found.append(
                Preview.from_metadata(
                    self.name,
                    metadata.get("labels") or {},
                    metadata.get("annotations") or {},
                    name=name,
                    url=preview_url(settings.url, name, base),
                    state=phase,
                )
            )
        return found

    def find(self, ctx: PreviewContext, name: str) -> Preview | None:
        return next((p for p in self.previews(ctx) if p.name == name), None)

    def alive(self, ctx: PreviewContext, name: str) -> str | None:
        return None  # Kubernetes restarts a crashed pod; readiness is what the gate waits for

    def logs(self, ctx: PreviewContext, name: str, lines: int) -> str:
        kubectl, _, base = self._open(ctx)
        return kubectl.logs(name, base.name, lines)

    @contextlib.contextmanager
    def reach(self, ctx: PreviewContext, preview: Preview) -> Iterator[str]:
        """The preview's URL, or a port-forward to its Service while the gate runs."""
        if preview.url:
            yield preview.url
            return
        kubectl, _, base = self._open(ctx)
        with kubectl.port_forward(preview.name, base.name, SERVICE_PORT) as port:
            yield f"http://127.0.0.1:{port}"
