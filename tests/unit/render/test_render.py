"""Rendered Kubernetes manifests.

No Kubernetes API server can run here, so the manifests are checked against Kubernetes' own
OpenAPI schemas with kubernetes-validate (offline, strict), and the probe numbers are checked
against the config they are computed from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.gitrepo import cli
from tests.support.tools import validate

DIGEST = "sha256:" + "c" * 64
IMAGE = f"registry.example.com/ml/llm-service@{DIGEST}"


def render(tmp_path: Path, config: str, *args: str) -> list[dict[str, Any]]:
    (tmp_path / "pipeline-kit.yaml").write_text(config)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    result = cli("render", "kubernetes", "--image", IMAGE, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (tmp_path / "manifests.yaml").write_text(result.stdout)
    return list(yaml.safe_load_all(result.stdout))


GPU_CONFIG = """\
image: registry.example.com/ml/llm-service
service: {port: 8000, max_load_time: 20m, model_path: /models}
kubernetes:
  namespace: serving
  replicas: 2
  gpus: 1
  node_selector: {nvidia.com/gpu.product: NVIDIA-A10G}
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
  resources: {requests: {cpu: "4", memory: 24Gi}}
  weights: {pvc: llm-weights}
  min_ready_seconds: 30
  termination_grace_period: 120
"""


def test_gpu_deployment_with_pvc_weights_is_valid_and_sized(tmp_path: Path) -> None:
    deployment, service = render(tmp_path, GPU_CONFIG)
    validate(tmp_path / "manifests.yaml")
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health/ready"
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 20 * 60
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert (spec["minReadySeconds"], pod["terminationGracePeriodSeconds"]) == (30, 120)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "24Gi"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A10G"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["volumes"] == [
        {"name": "weights", "persistentVolumeClaim": {"claimName": "llm-weights", "readOnly": True}}
    ]
    assert {"name": "MODEL_PATH", "value": "/models"} in container["env"]
    assert deployment["metadata"]["namespace"] == "serving"


def test_init_container_fetches_weights_into_empty_dir(tmp_path: Path) -> None:
    config = (
        "image: registry.example.com/ml/llm-service\n"
        "service: {max_load_time: 90s}\n"
        "kubernetes:\n  weights:\n    init:\n      image: registry.example.com/tools/fetch@"
        + DIGEST
        + '\n      command: ["fetch", "s3://models/llm", "/models"]\n      size: 40Gi\n'
    )
    deployment, _ = render(tmp_path, config, "--namespace", "preview-pr-7")
    validate(tmp_path / "manifests.yaml")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "weights", "emptyDir": {"sizeLimit": "40Gi"}}]
    assert pod["initContainers"][0]["command"] == ["fetch", "s3://models/llm", "/models"]
    startup = pod["containers"][0]["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 90
    assert deployment["metadata"]["namespace"] == "preview-pr-7"
    assert "nvidia.com/gpu" not in str(pod)


def test_a_tag_is_not_deployable(tmp_path: Path) -> None:
    (tmp_path / "pipeline-kit.yaml").write_text("image: registry.example.com/ml/llm\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    result = cli(
        "render", "kubernetes", "--image", "registry.example.com/ml/llm:latest", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "a tag is not a deployable reference" in result.stderr


def test_validation_can_fail(tmp_path: Path) -> None:
    """The validator itself rejects a broken Deployment (so the checks above mean something)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: many}\n"
    )
    with pytest.raises(AssertionError):
        validate(bad)


def test_output_writes_the_same_manifests_to_a_file(tmp_path: Path) -> None:
    """``--output`` (what a deploy step hands to ``kubectl apply -f``) holds what stdout would."""
    printed = render(tmp_path, GPU_CONFIG)
    result = cli(
        "render", "kubernetes", "--image", IMAGE, "--output", "out/manifests.yaml", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    written = list(yaml.safe_load_all((tmp_path / "out" / "manifests.yaml").read_text()))
    assert written == printed
