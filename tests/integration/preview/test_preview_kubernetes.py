"""The kubernetes preview provider.

No Kubernetes API server can run here, so ``kubectl`` is a recording stand-in on PATH
(support/services/kubectl_standin.py). What it is fed is checked for real: every manifest passes
``kubernetes-validate`` against Kubernetes 1.30's schemas (strict), the probe numbers are the
ones computed from the config, and the flags of each kubectl command line are checked against
the real kubectl's own ``--help`` where one is installed. ``preview run`` goes through the real
gate: the stand-in's port-forward serves the real example model server.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_kit.adapters import kubectl
from pipeline_kit.commands.preview import GcOptions, PreviewOptions, gc
from tests.support import SERVICES
from tests.support.ci_contexts import load_environ
from tests.support.gitrepo import GitRepo, cli
from tests.support.tools import validate

STANDIN = SERVICES / "kubectl_standin.py"
DIGEST = "sha256:" + "e" * 64
IMAGE = f"registry.example.com/ml/llm-service@{DIGEST}"
CONFIG = """\
image: registry.example.com/ml/llm-service
service: {port: 8000, max_load_time: 20m, model_path: /models, model: llm-service}
kubernetes:
  replicas: 3
  gpus: 1
  node_selector: {nvidia.com/gpu.product: NVIDIA-A10G}
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
  weights: {pvc: llm-weights}
  min_ready_seconds: 30
  termination_grace_period: 120
preview:
  provider: kubernetes
  scope: k8s-test
  kubernetes:
    context: staging
"""
URL = "  kubernetes:\n    context: staging\n    url: 'https://{name}.preview.example.com'\n"


@pytest.fixture
def cluster(tmp_path: Path) -> dict[str, str]:
    """PATH with the stand-in first, and where it keeps its state."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "kubectl"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    wrapper.chmod(0o755)
    state = tmp_path / "cluster"
    state.mkdir()
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBECTL_STANDIN_DIR": str(state)}


def calls(env: dict[str, str]) -> list[dict[str, Any]]:
    log = Path(env["KUBECTL_STANDIN_DIR"]) / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def project(tmp_path: Path, config: str = CONFIG) -> Path:
    root = tmp_path / "svc"
    root.mkdir()
    (root / "pipeline-kit.yaml").write_text(config)
    return root


def test_kubectl_argv() -> None:
    labels = {"pipeline-kit.dev/scope": "s", "pipeline-kit.dev/preview": "p"}
    assert kubectl.apply_argv("staging") == [
        "kubectl",
        "--context=staging",
        "apply",
        "--filename=-",
    ]
    assert kubectl.rollout_argv(None, "p", "llm", 1510) == [
        "kubectl", "rollout", "status", "deployment/llm", "--namespace=p", "--timeout=1510s",
    ]  # fmt: skip
    assert kubectl.list_namespaces_argv(None, labels) == [
        "kubectl", "get", "namespaces",
        "--selector=pipeline-kit.dev/preview=p,pipeline-kit.dev/scope=s", "-o", "json",
    ]  # fmt: skip
    assert kubectl.delete_namespaces_argv(None, labels) == [
        "kubectl", "delete", "namespaces",
        "--selector=pipeline-kit.dev/preview=p,pipeline-kit.dev/scope=s",
        "--ignore-not-found", "--wait=false",
    ]  # fmt: skip
    assert kubectl.port_forward_argv(None, "p", "llm", 80) == [
        "kubectl", "port-forward", "--namespace=p", "--address=127.0.0.1", "service/llm", ":80",
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl installed")
def test_every_flag_is_one_the_real_kubectl_knows() -> None:
    labels = {"a": "b"}
    lines = [
        kubectl.apply_argv("c"),
        kubectl.rollout_argv("c", "n", "d", 1),
        kubectl.list_namespaces_argv("c", labels),
        kubectl.delete_namespaces_argv("c", labels),
        kubectl.logs_argv("c", "n", "d", 5),
        kubectl.port_forward_argv("c", "n", "s", 80),
    ]
    global_help = subprocess.run(["kubectl", "options"], capture_output=True, text=True).stdout
    for argv in lines:
        words = [a for a in argv[1:] if not a.startswith("-")]
        command = words[:2] if words[0] == "rollout" else words[:1]
        helptext = subprocess.run(
            ["kubectl", *command, "--help"], capture_output=True, text=True
        ).stdout
        for arg in argv[1:]:
            if arg.startswith("--"):
                name = arg[2:].split("=", 1)[0]
                assert f"--{name}" in helptext + global_help, (command, name)
            elif arg == "-o":
                assert "-o, --output" in helptext, command


def test_up_applies_validated_manifests_sized_from_the_config(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    # The preview's kubernetes section, with a URL (appended, it would be the same key twice).
    root = project(tmp_path, CONFIG.replace("  kubernetes:\n    context: staging\n", URL))
    # A pull request takes the keys that reach the cluster (provider, context, weights) from
    # its base commit's config: the repository's, which the request does not change.
    base = GitRepo.init(root).commit()
    env = {**cluster, **load_environ("github-pull-request", tmp_path)}
    event = Path(env["GITHUB_EVENT_PATH"])
    payload = json.loads(event.read_text())
    payload["pull_request"]["base"]["sha"] = base
    event.write_text(json.dumps(payload))
    result = cli("preview", "up", "--image", IMAGE, "--format", "json", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["name"] == "llm-service-pr-57"
    assert record["url"] == "https://llm-service-pr-57.preview.example.com"
    assert (record["owner"], record["ref"]) == ("octo-dev", "fix/tokenizer")

    apply, rollout = calls(cluster)
    assert apply["argv"] == ["--context=staging", "apply", "--filename=-"]
    # 20 min load budget + 30 s minReadySeconds + 300 s for scheduling and the pull
    assert rollout["argv"] == ["--context=staging", "rollout", "status",
                               "deployment/llm-service", "--namespace=llm-service-pr-57",
                               "--timeout=1530s"]  # fmt: skip
    manifests = tmp_path / "applied.yaml"
    manifests.write_text(apply["stdin"])
    validate(manifests)
    namespace, deployment, service = yaml.safe_load_all(apply["stdin"])
    labels = namespace["metadata"]["labels"]
    assert namespace["metadata"]["name"] == "llm-service-pr-57"
    assert labels["app.kubernetes.io/managed-by"] == "pipeline-kit"
    assert labels["pipeline-kit.dev/scope"] == "k8s-test"
    assert (labels["pipeline-kit.dev/owner"], labels["pipeline-kit.dev/ref"]) == (
        "octo-dev", "fix-tokenizer",
    )  # fmt: skip
    expires = record["expires"].replace("-", "").replace(":", "")
    assert labels["pipeline-kit.dev/expires"] == expires
    assert namespace["metadata"]["annotations"]["pipeline-kit.dev/image"] == IMAGE

    assert deployment["metadata"]["namespace"] == service["metadata"]["namespace"] == record["name"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1  # a preview, whatever production runs
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert spec["minReadySeconds"] == 30
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 120
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health/ready"
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 20 * 60
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A10G"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "llm-weights"


def test_a_rollout_that_never_gets_ready_is_a_verdict(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    env = {**cluster, "KUBECTL_STANDIN_ROLLOUT": "fail"}
    result = cli("preview", "up", "--image", IMAGE, "--name", "slow", cwd=root, env=env)
    assert result.returncode == 1
    assert "deployment/llm-service in namespace slow did not become ready within 1530s" in (
        result.stderr
    )
    assert "timed out waiting for the condition" in result.stderr


def test_status_down_and_gc_go_by_label(tmp_path: Path, cluster: dict[str, str]) -> None:
    root = project(tmp_path)
    for name, ttl in (("old", "1h"), ("fresh", "48h")):
        up = cli("preview", "up", "--image", IMAGE, "--name", name, "--ttl", ttl, cwd=root,
                 env=cluster)  # fmt: skip
        assert up.returncode == 0, up.stderr
    status = cli("preview", "status", "--format", "json", cwd=root, env=cluster)
    listed = json.loads(status.stdout)["previews"]
    assert [(p["name"], p["state"], p["digest"]) for p in listed] == [
        ("fresh", "active", DIGEST), ("old", "active", DIGEST),
    ]  # fmt: skip

    later = datetime.now(timezone.utc) + timedelta(hours=2)
    out = io.StringIO()
    common = PreviewOptions(None, root, format="json", now=later, environ={**os.environ, **cluster})
    assert gc(GcOptions(common), out, io.StringIO()) == 0
    report = json.loads(out.getvalue())
    assert [r["name"] for r in report["removed"]] == ["old"]
    assert [r["name"] for r in report["kept"]] == ["fresh"]
    delete = calls(cluster)[-1]["argv"]
    assert delete[:3] == ["--context=staging", "delete", "namespaces"]
    assert (
        "pipeline-kit.dev/preview=old" in delete[3]
        and "pipeline-kit.dev/scope=k8s-test" in (delete[3])
    )

    down = cli("preview", "down", "fresh", "--format", "json", cwd=root, env=cluster)
    assert json.loads(down.stdout) == {"name": "fresh", "removed": True}
    again = cli("preview", "down", "fresh", "--format", "json", cwd=root, env=cluster)
    assert again.returncode == 0 and json.loads(again.stdout)["removed"] is False
    status = cli("preview", "status", "--format", "json", cwd=root, env=cluster)
    assert json.loads(status.stdout)["previews"] == []


def test_run_gates_through_a_port_forward_and_deletes_the_namespace(
    tmp_path: Path, cluster: dict[str, str], weights: Path
) -> None:
    root = project(tmp_path)
    env = {**cluster, "KUBECTL_STANDIN_WEIGHTS": str(weights)}
    result = cli("preview", "run", "--image", IMAGE, "--name", "gated", "--prompt",
                 "Shall I compare thee", "--expect-contains", "summer", "--format", "json",
                 cwd=root, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] is True and document["down"] == {"name": "gated", "removed": True}
    assert document["smoke"]["url"].startswith("http://127.0.0.1:")
    verbs = [c["argv"][1] for c in calls(cluster)]
    assert verbs == ["apply", "rollout", "port-forward", "delete"]
    pid = int((Path(cluster["KUBECTL_STANDIN_DIR"]) / "server.pid").read_text())
    assert not Path(f"/proc/{pid}").exists()  # the port-forward, and the server, ended with it
