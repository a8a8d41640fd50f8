"""The command provider with real commands: a small deploy tool (support/services/local_deployer.py)
that starts the example model server for real, gated by the real smoke gate."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pipeline_kit.commands.preview import GcOptions, PreviewOptions, gc
from tests.support import SERVICES
from tests.support.gitrepo import cli, cli_env
from tests.support.services.local_deployer import running

DEPLOYER = SERVICES / "local_deployer.py"
DIGEST = "sha256:" + "f" * 64
IMAGE = f"registry.example.com/ml/llm-service@{DIGEST}"


def project(
    tmp_path: Path, weights: Path, command: str | None = None
) -> tuple[Path, dict[str, str]]:
    state = tmp_path / "deployer"
    state.mkdir()
    tool = f'["{sys.executable}", "{DEPLOYER}"'
    command = (
        command
        or f"""\
    up: {tool}, up, "{{name}}", "{{port}}", "{{weights}}", "{{expires}}"]
    down: {tool}, down, "{{name}}"]
    url: "http://127.0.0.1:{{port}}"
    status: {tool}, status, "{{name}}"]
    list: {tool}, list]
    logs: {tool}, logs, "{{name}}"]
"""
    )
    command += "    env: [DEPLOYER_STATE]\n"  # the commands get no other variable of the kit's
    root = tmp_path / "svc"
    root.mkdir()
    (root / "pipeline-kit.yaml").write_text(
        "image: registry.example.com/ml/llm-service\n"
        "service: {model: llm-service, max_load_time: 1m}\n"
        "smoke:\n  requests: [{prompt: Shall I compare thee, contains: summer}]\n"
        f"preview:\n  provider: command\n  scope: cmd-test\n  weights: {weights}\n"
        f"  command:\n{command}"
    )
    return root, {"DEPLOYER_STATE": str(state)}


def calls(env: dict[str, str]) -> list[str]:
    return (Path(env["DEPLOYER_STATE"]) / "calls.log").read_text().splitlines()


def test_run_deploys_gates_and_runs_down(tmp_path: Path, weights: Path) -> None:
    root, env = project(tmp_path, weights)
    result = cli("preview", "run", "--image", IMAGE, "--name", "cmd-pass", "--format", "json",
                 cwd=root, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] is True
    assert document["preview"]["url"] == document["smoke"]["url"]
    assert "deployer: cmd-pass started" in result.stderr  # the tool's stderr is shown
    up, down = calls(env)
    assert up.startswith("up cmd-pass ") and up.endswith(" env-name=cmd-pass")
    assert str(weights) in up and down == "down cmd-pass env-name=cmd-pass"
    assert not (Path(env["DEPLOYER_STATE"]) / "cmd-pass.json").exists()


def test_a_failing_gate_still_runs_down_and_shows_the_log(tmp_path: Path, weights: Path) -> None:
    root, env = project(tmp_path, weights)
    result = cli("preview", "run", "--image", IMAGE, "--name", "cmd-fail", "--prompt", "hi",
                 "--expect-regex", "^never$", cwd=root, env=env)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "-- last lines of cmd-fail --" in result.stderr
    assert "model llm-service loaded" in result.stderr
    assert [line.split()[0] for line in calls(env)] == ["up", "logs", "down"]


def test_sigint_while_waiting_runs_down_and_exits_130(tmp_path: Path) -> None:
    """GitHub cancels a job with SIGINT first: the gate stops waiting and down still runs."""
    never_ready = tmp_path / "no-weights"
    never_ready.mkdir()
    root, env = project(tmp_path, never_ready)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline_kit", "preview", "run", "--image", IMAGE,
         "--name", "cmd-int", "--ready-timeout", "300"],
        cwd=root, env=cli_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the kit says when the gate starts waiting
        seen.append(line)
        if "is up at" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr
    assert "cmd-int torn down" in stderr and "interrupted by SIGINT" in stderr
    assert [line.split()[0] for line in calls(env)] == ["up", "down"]
    assert not (Path(env["DEPLOYER_STATE"]) / "cmd-int.json").exists()


def test_status_and_gc_read_the_tool_s_list(tmp_path: Path, weights: Path) -> None:
    root, env = project(tmp_path, weights)
    for name, ttl in (("cmd-old", "1h"), ("cmd-fresh", "48h")):
        up = cli("preview", "up", "--image", IMAGE, "--name", name, "--ttl", ttl, cwd=root,
                 env=env)  # fmt: skip
        assert up.returncode == 0, up.stderr
        assert up.stdout.startswith(f"preview {name}: http://127.0.0.1:")
    state = Path(env["DEPLOYER_STATE"])
    pids = {p.stem: json.loads(p.read_text())["pid"] for p in state.glob("*.json")}
    try:
        status = cli("preview", "status", "--format", "json", cwd=root, env=env)
        assert [p["name"] for p in json.loads(status.stdout)["previews"]] == [
            "cmd-fresh", "cmd-old",
        ]  # fmt: skip
        one = cli("preview", "status", "cmd-old", cwd=root, env=env)
        assert one.returncode == 0 and "cmd-old" in one.stdout

        later = datetime.now(timezone.utc) + timedelta(hours=2)
        common = PreviewOptions(None, root, format="json", now=later, environ={**os.environ, **env})
        out = io.StringIO()
        assert gc(GcOptions(common), out, io.StringIO()) == 0
        report = json.loads(out.getvalue())
        assert [r["name"] for r in report["removed"]] == ["cmd-old"]
        assert [r["name"] for r in report["kept"]] == ["cmd-fresh"]
        assert not running(pids["cmd-old"]) and running(pids["cmd-fresh"])
    finally:
        cli("preview", "down", "cmd-fresh", cwd=root, env=env)
    assert not running(pids["cmd-fresh"])


def test_status_without_a_list_asks_the_status_command(tmp_path: Path, weights: Path) -> None:
    tool = f'["{sys.executable}", "{DEPLOYER}"'
    command = (f'    up: {tool}, up, "{{name}}", "{{port}}", "{{weights}}", "{{expires}}"]\n'
               f'    down: {tool}, down, "{{name}}"]\n'
               f'    status: {tool}, status, "{{name}}"]\n')  # fmt: skip
    root, env = project(tmp_path, weights, command)
    absent = cli("preview", "status", "nothing-here", "--format", "json", cwd=root, env=env)
    assert absent.returncode == 0 and json.loads(absent.stdout)["previews"] == []
    gc_without_list = cli("preview", "gc", cwd=root, env=env)
    assert gc_without_list.returncode == 2
    assert "preview.command.list is not set" in gc_without_list.stderr


def test_config_errors_name_the_key(tmp_path: Path, weights: Path) -> None:
    tool = f'["{sys.executable}", "{DEPLOYER}"'
    root, env = project(tmp_path, weights, f'    up: {tool}, up, "{{name}}"]\n')
    missing = cli("preview", "up", "--image", IMAGE, "--name", "x", cwd=root, env=env)
    assert missing.returncode == 2
    assert "preview.command.down is required" in missing.stderr

    (tmp_path / "other").mkdir()
    bad_down = f'    up: {tool}, up]\n    down: {tool}, down, "{{image}}"]\n'
    root2, env2 = project(tmp_path / "other", weights, bad_down)
    bad = cli("preview", "down", "x", cwd=root2, env=env2)
    assert bad.returncode == 2 and "preview.command.down" in bad.stderr and "{image}" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr
