"""The smoke gate against the example server running for real, and against servers that fail.

The example server (examples/llm-service) runs as a subprocess on loopback with weights
trained by its own train.py. Failure modes the real server does not have (500s, garbage,
hangs) come from small stub servers. Budgets are small; every case checks the exit code and
the JUnit file.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from tests.support import REPO
from tests.support.ci_outputs import parse_github_outputs
from tests.support.gitrepo import cli
from tests.support.services.fake_model_server import ModelServerStub, json_answer
from tests.support.services.registry import free_port

EXAMPLE = REPO / "examples" / "llm-service"


def start_example(model_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "MODEL_PATH": str(model_dir), "PORT": str(port), "HOST": "127.0.0.1",
           "MODEL_NAME": "llm-service"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "server"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # listening (live), not necessarily ready
        try:
            urllib.request.urlopen(f"{url}/health/live", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the example server did not start")


@pytest.fixture(scope="module")
def example(weights: Path) -> Iterator[str]:
    proc, url = start_example(weights)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def smoke(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], ET.Element]:
    junit = tmp_path / "junit.xml"
    result = cli("smoke", "--format", "json", "--junit", str(junit), *args, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout), ET.parse(junit).getroot()


def failure_messages(suite: ET.Element) -> list[str]:
    return [f.get("message", "") for f in suite.iter("failure")]


# -- the real server ------------------------------------------------------------------------


def test_healthy_server_passes(tmp_path: Path, example: str) -> None:
    digest = "sha256:" + "a" * 64
    code, verdict, suite = smoke(
        tmp_path, "--url", example, "--prompt", "Shall I compare thee",
        "--expect-contains", "summer's day", "--expect-regex", r"\?$", "--digest", digest,
    )  # fmt: skip
    assert code == 0 and verdict["passed"]
    assert verdict["digest"] == "sha256:" + "a" * 64
    assert verdict["cases"][1]["output"] == "to a summer's day?"
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert suite.find("properties/property").get("value") == "sha256:" + "a" * 64  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", ["openai-chat", "openai-completions"])
def test_streaming_with_time_to_first_token(tmp_path: Path, example: str, protocol: str) -> None:
    code, verdict, _ = smoke(
        tmp_path, "--url", example, "--protocol", protocol, "--stream",
        "--prompt", "Shall I compare thee", "--expect-contains", "summer",
        "--repeat", "3", "--p95", "5",
    )  # fmt: skip
    assert code == 0, verdict
    names = [case["name"] for case in verdict["cases"]]
    assert names == ["readiness", "request 1 #1", "request 1 #2", "request 1 #3", "latency p95"]


def test_models_endpoint_and_config_driven_gate(tmp_path: Path, example: str) -> None:
    models = json.load(urllib.request.urlopen(f"{example}/v1/models", timeout=5))
    assert models["data"][0]["id"] == "llm-service"
    # The example's own config (service and smoke sections), pointed at this server by flag.
    (tmp_path / "pipeline-kit.yaml").write_text((EXAMPLE / "pipeline-kit.yaml").read_text())
    (tmp_path / "Dockerfile").write_text((EXAMPLE / "Dockerfile").read_text())
    code, verdict, _ = smoke(tmp_path, "--url", example)
    assert code == 0, verdict
    assert [c["name"] for c in verdict["cases"]][1:] == [
        "completes a famous line",
        "answers at all",
    ]


def test_never_ready_fails_within_its_budget(tmp_path: Path) -> None:
    empty = tmp_path / "no-weights"
    empty.mkdir()
    proc, url = start_example(empty)
    try:
        start = time.monotonic()
        code, verdict, suite = smoke(
            tmp_path, "--url", url, "--prompt", "hi", "--ready-timeout", "2"
        )
        took = time.monotonic() - start
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert code == 1 and not verdict["passed"]
    (message,) = failure_messages(suite)
    assert "not ready within 2s" in message and "model.safetensors is missing" in message
    assert took < 12  # the 2 s budget plus start-up, not the 15-minute default


def test_a_server_that_stopped_fails_at_once_not_at_the_budget(tmp_path: Path) -> None:
    """The gate asks ``alive`` while it waits: a dead server is a verdict now, not in 15 min."""
    from pipeline_kit.smoke.session import SmokeOptions, gate

    empty = tmp_path / "no-weights"
    empty.mkdir()
    proc, url = start_example(empty)
    proc.terminate()
    assert proc.wait(timeout=10) == 0  # the example handles SIGTERM: a clean stop, not a kill
    options = SmokeOptions(None, tmp_path, url=url, prompt="hi", ready_timeout=120)
    start = time.monotonic()
    verdict = gate(
        options, io.StringIO(), alive=lambda: None if proc.poll() is None else "it exited"
    )
    assert time.monotonic() - start < 10
    (case,) = verdict.cases
    assert not case.passed and "the server stopped before it was ready: it exited" in case.message


def test_wrong_protocol_fails_with_the_reason(tmp_path: Path, example: str) -> None:
    code, _, suite = smoke(tmp_path, "--url", example, "--protocol", "tgi", "--prompt", "hi")
    assert code == 1
    assert "expected HTTP 200, got HTTP 404" in failure_messages(suite)[0]
    code, _, suite = smoke(tmp_path, "--url", example, "--protocol", "kserve-v2", "--prompt", "hi")
    assert code == 1 and "/v2/models/model/infer" in failure_messages(suite)[0]


def test_bad_weights_are_a_load_error(tmp_path: Path, weights: Path) -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from server.model import ModelError, TrigramModel
    finally:
        sys.path.remove(str(EXAMPLE))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text((weights / "tokenizer.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cannot read the model"):
        TrigramModel.load(broken)
    model = TrigramModel.load(weights)
    assert model.generate("shall i compare thee", 6) == model.generate("shall i compare thee", 6)


# -- servers that misbehave -----------------------------------------------------------------


def ready(_: Any) -> tuple[int, bytes, str]:
    return json_answer(200, {"status": "ready"})


def chat_reply(text: str) -> Any:
    return lambda _: json_answer(
        200, {"choices": [{"message": {"role": "assistant", "content": text}}]}
    )


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (lambda _: json_answer(500, {"error": "CUDA error: device-side assert"}), "got HTTP 500"),
        (chat_reply(""), "empty output"),
        (lambda _: (200, b"<html>502 Bad Gateway</html>", "text/html"), "the body is not JSON"),
        (lambda _: json_answer(200, {"result": "fine"}), "malformed reply: no ['choices']"),
        (chat_reply("a " * 40), "40 tokens, expected at most 32"),
    ],
    ids=["http-500", "empty-output", "not-json", "wrong-shape", "too-long"],
)
def test_misbehaving_server_fails_the_gate(tmp_path: Path, route: Any, expected: str) -> None:
    stub = ModelServerStub({"/health/ready": ready, "/v1/chat/completions": route})
    try:
        code, verdict, suite = smoke(tmp_path, "--url", stub.url, "--prompt", "hi")
    finally:
        stub.stop()
    assert code == 1 and not verdict["passed"]
    assert any(expected in m for m in failure_messages(suite)), failure_messages(suite)


def test_hanging_request_times_out(tmp_path: Path) -> None:
    release = threading.Event()

    def hang(_: Any) -> tuple[int, bytes, str]:
        release.wait(30)
        return chat_reply("late")(None)  # type: ignore[no-any-return]

    stub = ModelServerStub({"/health/ready": ready, "/v1/chat/completions": hang})
    try:
        start = time.monotonic()
        code, _, suite = smoke(
            tmp_path, "--url", stub.url, "--prompt", "hi", "--request-timeout", "1"
        )
        took = time.monotonic() - start
    finally:
        release.set()
        stub.stop()
    assert code == 1 and "timed out after 1s" in failure_messages(suite)[0]
    assert took < 10


def test_slow_loading_server_is_waited_for(tmp_path: Path) -> None:
    """Ready only from the fourth readiness probe on: the gate keeps polling, then passes."""
    probes = {"n": 0}

    def loading(_: Any) -> tuple[int, bytes, str]:
        probes["n"] += 1
        return json_answer(200 if probes["n"] >= 4 else 503, {"status": "loading"})

    stub = ModelServerStub(
        {"/health/ready": loading, "/v1/chat/completions": chat_reply("hello there")}
    )
    try:
        code, verdict, _ = smoke(
            tmp_path, "--url", stub.url, "--prompt", "hi", "--ready-timeout", "30"
        )
    finally:
        stub.stop()
    assert code == 0, verdict
    assert probes["n"] == 4


def test_connection_refused_is_still_loading_until_the_budget(tmp_path: Path) -> None:
    code, _, suite = smoke(
        tmp_path,
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "--prompt",
        "hi",
        "--ready-timeout",
        "1",
    )
    assert code == 1 and "last answered: connection refused" in failure_messages(suite)[0]


@pytest.mark.parametrize(
    ("protocol", "path", "reply", "extra"),
    [
        ("truss", "/v1/models/m:predict", {"output": "truss says hi"}, []),
        ("kserve-v2", "/v2/models/m/infer",
         {"outputs": [{"name": "o", "datatype": "BYTES", "shape": [1],
                       "data": ["kserve says hi"]}]}, []),
        ("tgi", "/generate",
         {"generated_text": "tgi says hi", "details": {"generated_tokens": 3}}, []),
        ("cog", "/predictions", {"status": "succeeded", "output": ["cog ", "says ", "hi"]}, []),
        ("openai-completions", "/v1/completions",
         {"choices": [{"text": "completion says hi"}]}, []),
    ],
)  # fmt: skip
def test_each_protocol_speaks_its_shape(
    tmp_path: Path, protocol: str, path: str, reply: Any, extra: list[str]
) -> None:
    seen: list[Any] = []

    def answer(body: Any) -> tuple[int, bytes, str]:
        seen.append(body)
        return json_answer(200, reply)

    stub = ModelServerStub({"/health/ready": ready, path: answer})
    try:
        code, verdict, _ = smoke(
            tmp_path, "--url", stub.url, "--protocol", protocol, "--model", "m",
            "--prompt", "hello", "--expect-regex", "says hi$", *extra,
        )  # fmt: skip
    finally:
        stub.stop()
    assert code == 0, verdict
    assert "hello" in json.dumps(seen[0])
    assert ("0" in json.dumps(seen[0])) or protocol == "tgi"  # temperature 0 / do_sample false


def test_http_protocol_with_jsonpath(tmp_path: Path) -> None:
    (tmp_path / "pipeline-kit.yaml").write_text(
        "smoke:\n  protocol: http\n  http:\n    path: /api/run\n"
        '    body: \'{"q": {prompt}, "n": {max_tokens}}\'\n    output: "$.result.choices[1].text"\n'
    )
    seen: list[Any] = []

    def answer(body: Any) -> tuple[int, bytes, str]:
        seen.append(body)
        return json_answer(200, {"result": {"choices": [{"text": "no"}, {"text": "yes it works"}]}})

    stub = ModelServerStub({"/health/ready": ready, "/api/run": answer})
    try:
        code, verdict, _ = smoke(
            tmp_path, "--url", stub.url, "--prompt", "ping", "--expect-contains", "works"
        )
    finally:
        stub.stop()
    assert code == 0, verdict
    assert seen == [{"q": "ping", "n": 32}]


def test_github_step_summary_and_flag_errors(tmp_path: Path, example: str) -> None:
    summary = tmp_path / "summary.md"
    result = cli(
        "smoke",
        "--url",
        example,
        "--prompt",
        "Shall I",
        cwd=tmp_path,
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.returncode == 0, result.stderr
    assert "### Smoke inference passed" in summary.read_text()
    digest = "sha256:" + "b" * 64
    outputs = tmp_path / "outputs"
    env = {"GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary)}
    args = ["--url", example, "--digest", digest, "--format", "github"]
    result = cli("smoke", *args, "--prompt", "Shall I", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    values = parse_github_outputs(outputs.read_text())
    assert values["verdict"] == "passed" and values["digest"] == digest
    assert json.loads(values["json"])["passed"] is True
    failed = cli("smoke", "--url", example, "--prompt", "Shall I", "--expect-contains", "zebra",
                 "--format", "gitlab", "--dotenv", "smoke.env", cwd=tmp_path)  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert (tmp_path / "smoke.env").read_text() == (
        "PIPELINE_KIT_VERDICT=failed\nPIPELINE_KIT_DIGEST=\n"
    )
    missing = cli("smoke", "--prompt", "x", cwd=tmp_path)
    assert missing.returncode == 2 and "no server URL" in missing.stderr
    nothing = cli("smoke", "--url", example, cwd=tmp_path)
    assert nothing.returncode == 2 and "nothing to ask" in nothing.stderr
