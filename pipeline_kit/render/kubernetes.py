"""Kubernetes manifests for a model server: probes sized from the load time, weights mounted.

The probes follow what the server promises (``service``): a startup probe on the ready
endpoint whose budget (failureThreshold x periodSeconds) covers the longest load, readiness on
the same endpoint, liveness on process health only (a loading model must not be restarted),
and a rolling update that never drops below the current capacity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_kit.adapters.registry.references import ImageRef
from pipeline_kit.config.loader import Config
from pipeline_kit.config.service import ServiceSpec
from pipeline_kit.errors import InputError

STARTUP_PERIOD_S = 10
WEIGHTS_VOLUME = "weights"
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class KubernetesSpec:
    name: str
    namespace: str = "default"
    replicas: int = 1
    gpus: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    resources: Mapping[str, Any] = field(default_factory=dict)
    weights_pvc: str | None = None
    weights_init: Mapping[str, Any] | None = None  # {image, command, size}
    min_ready_seconds: int = 10
    termination_grace_period: int = 60
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> KubernetesSpec:
        section = config.section("kubernetes")
        weights = section.get("weights") or {}
        default_name = (config.image or "model-server").rsplit("/", 1)[-1]
        return cls(
            name=dns_label(str(section.get("name", default_name))),
            namespace=str(section.get("namespace", "default")),
            replicas=int(section.get("replicas", 1)),
            gpus=int(section.get("gpus", 0)),
            node_selector=dict(section.get("node_selector") or {}),
            tolerations=tuple(section.get("tolerations") or ()),
            resources=dict(section.get("resources") or {}),
            weights_pvc=weights.get("pvc"),
            weights_init=weights.get("init"),
            min_ready_seconds=int(section.get("min_ready_seconds", 10)),
            termination_grace_period=int(section.get("termination_grace_period", 60)),
            labels=dict(section.get("labels") or {}),
        )


def dns_label(text: str, limit: int = 63) -> str:
    """A DNS-1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric."""
    label = _DNS_LABEL.sub("-", text.lower()).strip("-")[:limit].rstrip("-")
    return label or "x"


def render(image: str, service: ServiceSpec, spec: KubernetesSpec) -> list[dict[str, Any]]:
    """Deployment and Service for ``image``, which must name a digest (deploy what was tested)."""
    ref = ImageRef.parse(image)
    if ref.digest is None:
        raise InputError(
            f"--image {image}: a tag is not a deployable reference.",
            hint="Give the digest that passed the gate: repo@sha256:... (the build record has it).",
        )
    labels = {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/managed-by": "pipeline-kit"}
    labels.update(spec.labels)
    selector = {"app.kubernetes.io/name": spec.name}
    port = {"containerPort": service.port, "name": "http", "protocol": "TCP"}
    startup_failures = max(1, math.ceil(service.max_load_seconds / STARTUP_PERIOD_S))

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 5,
        }

    resources: dict[str, Any] = {k: dict(v) for k, v in spec.resources.items()}
    if spec.gpus:
        resources.setdefault("limits", {})["nvidia.com/gpu"] = spec.gpus
    container: dict[str, Any] = {
        "name": "server",
        "image": f"{ref.registry}/{ref.repository}@{ref.digest}",
        "ports": [port],
        "env": [{"name": "MODEL_PATH", "value": service.model_path}],
        "startupProbe": probe(service.ready_path, STARTUP_PERIOD_S, startup_failures),
        "readinessProbe": probe(service.ready_path, 5, 3),
        "livenessProbe": probe(service.live_path, 10, 3),
        "volumeMounts": [
            {"name": WEIGHTS_VOLUME, "mountPath": service.model_path, "readOnly": True}
        ],
    }
    if resources:
        container["resources"] = resources
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": spec.termination_grace_period,
        "containers": [container],
        "volumes": [_weights_volume(spec)],
    }
    if spec.weights_init is not None:
        pod["initContainers"] = [
            {
                "name": "fetch-weights",
                "image": str(spec.weights_init["image"]),
                "command": [str(part) for part in spec.weights_init["command"]],
                "env": [{"name": "MODEL_PATH", "value": service.model_path}],
                "volumeMounts": [{"name": WEIGHTS_VOLUME, "mountPath": service.model_path}],
            }
        ]
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [dict(t) for t in spec.tolerations]
    metadata = {"name": spec.name, "namespace": spec.namespace, "labels": labels}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector},
            "minReadySeconds": spec.min_ready_seconds,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    service_manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [deployment, service_manifest]


def _weights_volume(spec: KubernetesSpec) -> dict[str, Any]:
    if spec.weights_pvc:
        return {
            "name": WEIGHTS_VOLUME,
            "persistentVolumeClaim": {"claimName": spec.weights_pvc, "readOnly": True},
        }
    size = (spec.weights_init or {}).get("size")
    return {"name": WEIGHTS_VOLUME, "emptyDir": {"sizeLimit": str(size)} if size else {}}
