"""``pipeline-kit deploy``: apply, rollout, the post-deploy gate, and the way back.

No Kubernetes API server can run here, so ``kubectl`` is a recording stand-in on PATH
(support/services/kubectl_standin.py) that keeps Deployments and their revisions as the
Deployment controller numbers them. What it is fed is checked for real: every applied manifest
passes ``kubernetes-validate`` against Kubernetes 1.30's schemas (strict), every kubectl command
line's flags are checked against the real kubectl's own ``--help``, and the revision query's
jsonpath is run by the real kubectl on a Deployment manifest. The gate is the real one, against
the real example model server that the stand-in's port-forward starts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_kit.adapters import kubectl
from tests.support import REPO, SERVICES
from tests.support.gitrepo import cli, cli_env
from tests.support.services.registry import free_port
from tests.support.tools import validate

STANDIN = SERVICES / "kubectl_standin.py"
OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64
REPOSITORY = "registry.example.com/ml/llm-service"
CONFIG = """\
image: registry.example.com/ml/llm-service
service: {port: 8000, max_load_time: 20m, model_path: /models, model: llm-service}
kubernetes:
  namespace: production
  replicas: 2
  weights: {pvc: llm-weights}
  min_ready_seconds: 30
deploy:
  context: prod
smoke:
  requests:
    - {name: sonnet, prompt: Shall I compare thee, contains: summer, max_latency: 1.5}
"""


@pytest.fixture
def cluster(tmp_path: Path, weights: Path) -> dict[str, str]:
    """PATH with the stand-in first, where it keeps its state, and the example's weights."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "kubectl"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    wrapper.chmod(0o755)
    state = tmp_path / "cluster"
    state.mkdir()
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "KUBECTL_STANDIN_DIR": str(state),
        "KUBECTL_STANDIN_WEIGHTS": str(weights),
    }


def calls(env: dict[str, str]) -> list[dict[str, Any]]:
    log = Path(env["KUBECTL_STANDIN_DIR"]) / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def verbs(env: dict[str, str]) -> list[str]:
    """Each call as its verb (``rollout status`` as ``status``), the context dropped."""
    return [c["argv"][2] if c["argv"][1] == "rollout" else c["argv"][1] for c in calls(env)]


def deployments(env: dict[str, str]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (Path(env["KUBECTL_STANDIN_DIR"]) / "deployments.json").read_text()
    )
    return loaded


def project(tmp_path: Path, config: str = CONFIG) -> Path:
    root = tmp_path / "svc"
    root.mkdir()
    (root / "pipeline-kit.yaml").write_text(config)
    return root


def deploy(root: Path, env: dict[str, str], digest: str, *args: str) -> Any:
    return cli("deploy", "--image", f"{REPOSITORY}@{digest}", *args, cwd=root, env=env)


def first_deploy(root: Path, env: dict[str, str]) -> None:
    """OLD at revision 1, and the call log emptied for the deploy under test."""
    result = deploy(root, env, OLD)
    assert result.returncode == 0, result.stderr
    (Path(env["KUBECTL_STANDIN_DIR"]) / "calls.jsonl").unlink()


def test_deploy_argv() -> None:
    assert kubectl.server_side_apply_argv("prod") == [
        "kubectl", "--context=prod", "apply", "--server-side", "--field-manager=pipeline-kit",
        "--filename=-",
    ]  # fmt: skip
    assert kubectl.revision_argv(None, "production", "llm") == [
        "kubectl", "get", "deployment/llm", "--namespace=production", "--ignore-not-found",
        "--output=jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        '{"\\t"}{.spec.template.spec.containers[0].image}',
    ]  # fmt: skip
    assert kubectl.undo_argv(None, "production", "llm") == [
        "kubectl", "rollout", "undo", "deployment/llm", "--namespace=production",
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl installed")
def test_every_deploy_flag_is_one_the_real_kubectl_knows(tmp_path: Path) -> None:
    global_help = subprocess.run(["kubectl", "options"], capture_output=True, text=True).stdout
    for argv in (
        kubectl.server_side_apply_argv("c"),
        kubectl.revision_argv("c", "n", "d"),
        kubectl.undo_argv("c", "n", "d"),
        kubectl.rollout_argv("c", "n", "d", 1),
        kubectl.port_forward_argv("c", "n", "s", 80),
    ):
        words = [a for a in argv[1:] if not a.startswith("-")]
        command = words[:2] if words[0] == "rollout" else words[:1]
        helptext = subprocess.run(
            ["kubectl", *command, "--help"], capture_output=True, text=True
        ).stdout
        assert helptext, command
        for arg in argv[1:]:
            if arg.startswith("--"):
                name = arg[2:].split("=", 1)[0]
                assert f"--{name}" in helptext + global_help, (command, name)
    assert "--no-such-flag" not in global_help + helptext  # the check can fail


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl installed")
def test_the_real_kubectl_prints_the_revision_and_image_as_the_kit_reads_them(
    tmp_path: Path,
) -> None:
    # `annotate --local` needs no cluster and prints the object through the same -o jsonpath.
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "production"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "server", "image": f"{REPOSITORY}@{OLD}"}]},
        }},
    }))  # fmt: skip
    output = kubectl.revision_argv(None, "production", "llm")[-1]
    printed = subprocess.run(
        ["kubectl", "annotate", "--local", f"--filename={manifest}",
         "deployment.kubernetes.io/revision=7", output],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert printed == f"7\t{REPOSITORY}@{OLD}"


def test_a_deploy_applies_waits_gates_and_reports_the_revisions(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    first = deploy(root, cluster, OLD, "--format", "json")
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    assert (document["revision_before"], document["revision_after"]) == (None, 1)
    assert "a first deploy" in first.stderr
    (Path(cluster["KUBECTL_STANDIN_DIR"]) / "calls.jsonl").unlink()

    outputs = tmp_path / "github-output"
    env = {**cluster, "GITHUB_OUTPUT": str(outputs)}
    result = deploy(root, env, NEW, "--format", "github")
    assert result.returncode == 0, result.stderr
    assert verbs(cluster) == ["get", "apply", "status", "port-forward", "get"]
    get, apply, status, _, _ = calls(cluster)
    assert get["argv"][:3] == ["--context=prod", "get", "deployment/llm-service"]
    assert apply["argv"] == ["--context=prod", "apply", "--server-side",
                             "--field-manager=pipeline-kit", "--filename=-"]  # fmt: skip
    # 20 min load budget + 30 s minReadySeconds + 300 s for scheduling and the pull
    assert status["argv"] == ["--context=prod", "rollout", "status", "deployment/llm-service",
                              "--namespace=production", "--timeout=1530s"]  # fmt: skip
    applied = tmp_path / "applied.yaml"
    applied.write_text(apply["stdin"])
    validate(applied)
    deployment, service = yaml.safe_load_all(apply["stdin"])
    assert deployment["metadata"]["namespace"] == service["metadata"]["namespace"] == "production"
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{REPOSITORY}@{NEW}"

    assert "pass  sonnet" in result.stdout
    assert f"deployed {REPOSITORY}@{NEW}: deployment/llm-service in production, revision 2 " \
        "(was 1)" in result.stdout  # fmt: skip
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert written["verdict"] == "passed" and written["digest"] == NEW
    assert written["namespace"] == "production"
    assert (written["revision-before"], written["revision-after"]) == ("1", "2")
    assert written["rolled-back"] == "false"
    # every step on stderr, with the time since the deploy started
    for step in ("applying deployment/llm-service", "waiting up to 1530s", "gating it"):
        assert any(step in line and "s] " in line for line in result.stderr.splitlines()), step
    assert deployments(cluster)["production/llm-service"]["revisions"][-1].endswith(NEW)


def test_a_rollout_that_never_gets_ready_is_rolled_back(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    first_deploy(root, cluster)
    env = {**cluster, "KUBECTL_STANDIN_UNREADY": NEW}
    result = deploy(root, env, NEW, "--format", "json")
    assert result.returncode == 1, result.stderr
    assert verbs(cluster) == ["get", "apply", "status", "undo", "status", "get"]
    assert calls(cluster)[3]["argv"] == [
        "--context=prod",
        "rollout",
        "undo",
        "deployment/llm-service",
        "--namespace=production",
    ]
    document = json.loads(result.stdout)
    assert document["passed"] is False and document["verdict"] == "failed"
    assert document["failed_step"] == "rollout" and document["rolled_back"] is True
    assert "did not become ready within 1530s" in document["failure"]
    assert "timed out waiting for the condition" in document["failure"]
    # the controller's numbering: the undo is revision 3, with revision 1's template
    assert (document["revision_before"], document["revision_after"]) == (1, 3)
    assert document["smoke"] is None  # never gated: nothing was ready
    assert deployments(cluster)["production/llm-service"]["revisions"][-1].endswith(OLD)
    assert "rolling deployment/llm-service back to revision 1" in result.stderr


def test_a_failed_post_deploy_gate_is_rolled_back_and_names_the_case(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    first_deploy(root, cluster)
    env = {**cluster, "KUBECTL_STANDIN_SLOW": NEW}  # answers right, 2 s late
    result = deploy(root, env, NEW)
    assert result.returncode == 1, result.stderr
    assert verbs(cluster) == ["get", "apply", "status", "port-forward", "undo", "status", "get"]
    assert "FAIL  sonnet" in result.stdout
    assert "deploy FAILED at smoke: the post-deploy smoke gate failed: sonnet" in result.stdout
    assert "rolled back: deployment/llm-service in production is at revision 3, the template " \
        "of revision 1" in result.stdout  # fmt: skip
    assert deployments(cluster)["production/llm-service"]["revisions"][-1].endswith(OLD)


def test_a_gate_that_cannot_run_fails_closed_rolls_back_and_says_why(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    first_deploy(root, cluster)
    result = deploy(root, {**cluster, "KUBECTL_STANDIN_FORWARD": "fail"}, NEW)
    assert result.returncode == 3, result.stderr  # the cluster, not the change
    assert verbs(cluster) == ["get", "apply", "status", "port-forward", "undo", "status"]
    assert "unable to forward port because pod is not running" in result.stderr
    assert "the deploy was rolled back: deployment/llm-service is back at revision 1" in (
        result.stderr
    )
    assert deployments(cluster)["production/llm-service"]["revisions"][-1].endswith(OLD)


def test_a_first_deploy_that_fails_is_scaled_to_zero(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    env = {**cluster, "KUBECTL_STANDIN_UNREADY": OLD}
    result = deploy(root, env, OLD, "--format", "json")
    assert result.returncode == 1, result.stderr
    assert verbs(cluster) == ["get", "apply", "status", "apply", "get"]  # no undo: no history
    document = json.loads(result.stdout)
    assert (document["rolled_back"], document["scaled_down"]) == (False, True)
    scaled = calls(cluster)[3]
    assert scaled["argv"] == calls(cluster)[1]["argv"]  # same field manager: no conflict later
    manifests = tmp_path / "scaled.yaml"
    manifests.write_text(scaled["stdin"])
    validate(manifests)
    deployment, _ = yaml.safe_load_all(scaled["stdin"])
    assert deployment["spec"]["replicas"] == 0
    assert deployments(cluster)["production/llm-service"]["replicas"] == 0


def test_a_digest_already_running_is_not_undone_to_an_older_one(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    first_deploy(root, cluster)
    env = {**cluster, "KUBECTL_STANDIN_SLOW": OLD}
    result = deploy(root, env, OLD, "--format", "json")
    assert result.returncode == 1, result.stderr
    assert "undo" not in verbs(cluster)
    document = json.loads(result.stdout)
    assert document["failed_step"] == "smoke" and document["rolled_back"] is False
    assert "already running this digest" in result.stderr


def test_a_tag_is_refused_before_any_kubectl_call(tmp_path: Path, cluster: dict[str, str]) -> None:
    result = cli("deploy", "--image", f"{REPOSITORY}:latest", cwd=project(tmp_path), env=cluster)
    assert result.returncode == 2
    assert "a tag is not a deployable reference" in result.stderr
    assert calls(cluster) == []


def test_no_kubectl_is_an_environment_error(tmp_path: Path, cluster: dict[str, str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = deploy(project(tmp_path), {**cluster, "PATH": str(empty)}, NEW)
    assert result.returncode == 3
    assert "`kubectl` is not installed or not on PATH" in result.stderr


def test_an_unreachable_cluster_is_an_environment_error(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    env = {**cluster, "KUBECTL_STANDIN_UNREACHABLE": "1"}
    result = deploy(project(tmp_path), env, NEW)
    assert result.returncode == 3
    assert "connection to the server 127.0.0.1:6443 was refused" in result.stderr
    assert verbs(cluster) == ["get"]  # nothing applied


def _terminated_while_waiting(root: Path, env: dict[str, str]) -> tuple[int, str]:
    """Deploy NEW, SIGTERM the kit once the stand-in says a rollout wait has begun."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline_kit", "deploy", "--image", f"{REPOSITORY}@{NEW}"],
        cwd=root, env=cli_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    waiting = Path(env["KUBECTL_STANDIN_DIR"]) / "rollout.waiting"
    deadline = time.monotonic() + 60
    while not waiting.exists():  # the stand-in says when the kit is waiting on it
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def test_sigterm_during_the_rollout_wait_rolls_back_and_says_so(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    first_deploy(root, cluster)
    code, stderr = _terminated_while_waiting(root, {**cluster, "KUBECTL_STANDIN_HANG": NEW})
    assert code == 130, stderr
    assert "interrupted during rollout" in stderr
    assert "rollout undo sent: deployment/llm-service is going back to revision 1" in stderr
    assert verbs(cluster) == ["get", "apply", "status", "undo"]
    assert deployments(cluster)["production/llm-service"]["revisions"][-1].endswith(OLD)


def test_sigterm_during_the_rollback_wait_says_the_undo_was_sent(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    first_deploy(root, cluster)
    env = {**cluster, "KUBECTL_STANDIN_UNREADY": NEW, "KUBECTL_STANDIN_HANG": OLD}
    code, stderr = _terminated_while_waiting(root, env)
    assert code == 130, stderr
    assert "interrupted while waiting for the rollback: the undo was sent" in stderr
    assert verbs(cluster) == ["get", "apply", "status", "undo", "status"]


@pytest.fixture
def production(weights: Path) -> Iterator[str]:
    """The example model server on loopback, as the production Service's URL would answer."""
    port = free_port()
    env = {**os.environ, "MODEL_PATH": str(weights), "PORT": str(port), "HOST": "127.0.0.1",
           "MODEL_NAME": "llm-service"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "server"], cwd=REPO / "examples" /
                              "llm-service", env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # listening (live); the gate waits for ready itself
        try:
            urllib.request.urlopen(f"{url}/health/live", timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "no example server"
            time.sleep(0.05)
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_deploy_url_and_rollout_timeout_from_the_config(
    tmp_path: Path, cluster: dict[str, str], production: str
) -> None:
    config = CONFIG.replace("  context: prod\n", f"  context: prod\n  url: '{production}'\n"
                            "  rollout_timeout: 90s\n")  # fmt: skip
    root = project(tmp_path, config)
    result = deploy(root, cluster, NEW, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert verbs(cluster) == ["get", "apply", "status", "get"]  # no port-forward: the URL
    assert calls(cluster)[2]["argv"][-1] == "--timeout=90s"
    assert json.loads(result.stdout)["smoke"]["url"] == production


def test_a_rollback_that_does_not_get_ready_either_is_said(
    tmp_path: Path, cluster: dict[str, str]
) -> None:
    root = project(tmp_path)
    first_deploy(root, cluster)
    result = deploy(root, {**cluster, "KUBECTL_STANDIN_ROLLOUT": "fail"}, NEW)
    assert result.returncode == 1, result.stderr
    assert verbs(cluster) == ["get", "apply", "status", "undo", "status", "get"]
    assert "deploy FAILED at rollout" in result.stdout
    assert "the rollback of deployment/llm-service did not become ready within 1530s either" in (
        result.stdout
    )
