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

import pytest

from tests.support import REPO
from tests.support.ci_outputs import parse_github_outputs
from tests.support.gitrepo import cli
from tests.support.services.fake_model_server import (
    Answer,
    Route,
    chat_route,
    json_answer,
    ready_route,
    run_smoke,
    running,
)
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


# -- the real server ------------------------------------------------------------------------


def test_healthy_server_passes(tmp_path: Path, example: str) -> None:
    digest = "sha256:" + "a" * 64
    code, verdict, suite = run_smoke(
        tmp_path, "--url", example, "--prompt", "Shall I compare thee",
        "--expect-contains", "summer's day", "--expect-regex", r"\?$", "--digest", digest,
    )  # fmt: skip
    assert code == 0 and verdict["passed"]
    assert verdict["digest"] == "sha256:" + "a" * 64
    assert verdict["cases"][1]["output"] == "to a summer's day?"
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert suite.find("properties/property").get("value") == "sha256:" + "a" * 64  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", ["openai-chat", "openai-completions"])
def test_streaming_within_its_budgets(tmp_path: Path, example: str, protocol: str) -> None:
    """Streamed, with budgets for the first token, each request and the p95 (generous: this is
    the passing side; tests/integration/smoke/test_budgets.py has the failing side). The
    streamed pieces join into the same text the whole answer has."""
    (tmp_path / "pipeline-kit.yaml").write_text(
        "smoke:\n  stream: true\n  repeat: 3\n  p95: 5\n  requests:\n"
        "    - prompt: Shall I compare thee\n      contains: summer\n"
        "      max_ttft: 5\n      max_latency: 10\n"
    )
    code, verdict, _ = run_smoke(tmp_path, "--url", example, "--protocol", protocol)
    assert code == 0, verdict
    names = [case["name"] for case in verdict["cases"]]
    assert names == ["readiness", "request 1 #1", "request 1 #2", "request 1 #3", "latency p95"]
    assert [case["output"] for case in verdict["cases"][1:4]] == ["to a summer's day?"] * 3


def test_models_endpoint_and_config_driven_gate(tmp_path: Path, example: str) -> None:
    models = json.load(urllib.request.urlopen(f"{example}/v1/models", timeout=5))
    assert models["data"][0]["id"] == "llm-service"
    # The example's own config (service and smoke sections), pointed at this server by flag.
    (tmp_path / "pipeline-kit.yaml").write_text((EXAMPLE / "pipeline-kit.yaml").read_text())
    (tmp_path / "Dockerfile").write_text((EXAMPLE / "Dockerfile").read_text())
    code, verdict, _ = run_smoke(tmp_path, "--url", example)
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
        run = run_smoke(tmp_path, "--url", url, "--prompt", "hi", "--ready-timeout", "2")
        took = time.monotonic() - start
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert run.code == 1 and not run.verdict["passed"]
    (message,) = run.failures
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
    run = run_smoke(tmp_path, "--url", example, "--protocol", "tgi", "--prompt", "hi")
    assert run.code == 1
    assert run.failures[0].startswith(f"tgi {example}/generate: expected HTTP 200, got HTTP 404"), (
        run.failures
    )
    run = run_smoke(tmp_path, "--url", example, "--protocol", "kserve-v2", "--prompt", "hi")
    assert run.code == 1
    assert run.failures[0].startswith(
        f"kserve-v2 {example}/v2/models/model/infer: expected HTTP 200, got HTTP 404"
    ), run.failures


def test_bad_weights_are_a_load_error(tmp_path: Path, weights: Path) -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from server.model import ModelError, TrigramModel  # type: ignore[import-not-found]
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

CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (lambda _: json_answer(500, {"error": "CUDA error: device-side assert"}),
         'openai-chat {url}/v1/chat/completions: expected HTTP 200, got HTTP 500: '
         '{{"error": "CUDA error: device-side assert"}}'),
        (chat_route(""), "empty output"),
        (chat_route("  \n "), "empty output"),
        (lambda _: (200, b"<html>502 Bad Gateway</html>", "text/html"),
         "openai-chat: malformed reply: the body is not JSON: '<html>502 Bad Gateway</html>'"),
        (lambda _: json_answer(200, {"result": "fine"}),
         "openai-chat: malformed reply: no ['choices'] in the reply"),
        (lambda _: json_answer(200, {"choices": [{"message": {"content": 7}}]}),
         "openai-chat: malformed reply: choices[0].message.content is int, not text"),
        (chat_route("a " * 40), "40 tokens, expected at most 32"),
    ],
    ids=["http-500", "empty-output", "blank-output", "not-json", "wrong-shape", "not-text",
         "too-long"],
)  # fmt: skip
def test_misbehaving_server_fails_the_gate(tmp_path: Path, route: Route, expected: str) -> None:
    with running({"/health/ready": ready_route, CHAT: route}) as stub:
        run = run_smoke(tmp_path, "--url", stub.url, "--prompt", "hi")
    assert run.code == 1 and not run.verdict["passed"]
    assert run.failures == [expected.format(url=stub.url)]


def test_hanging_request_times_out(tmp_path: Path) -> None:
    """The server holds the answer until the command has ended: the client gives up first."""
    release = threading.Event()

    def hang(body: Any) -> Answer:
        release.wait(30)
        return json_answer(200, {"choices": [{"message": {"content": "late"}}]})

    with running({"/health/ready": ready_route, CHAT: hang}) as stub:
        try:
            start = time.monotonic()
            run = run_smoke(tmp_path, "--url", stub.url, "--prompt", "hi", "--request-timeout", "1")
            took = time.monotonic() - start
        finally:
            release.set()
    assert run.code == 1
    assert run.failures == [f"openai-chat {stub.url}{CHAT}: timed out after 1s"]
    assert took < 10


def test_slow_loading_server_is_waited_for(tmp_path: Path) -> None:
    """Ready only from the fourth readiness probe on: the gate keeps polling, then passes."""
    probes = {"n": 0}

    def loading(_: Any) -> Answer:
        probes["n"] += 1
        return json_answer(200 if probes["n"] >= 4 else 503, {"status": "loading"})

    routes = {"/health/ready": loading, CHAT: chat_route("hello there")}
    with running(routes) as stub:
        code, verdict, _ = run_smoke(
            tmp_path, "--url", stub.url, "--prompt", "hi", "--ready-timeout", "30"
        )
    assert code == 0, verdict
    assert probes["n"] == 4


def test_connection_refused_is_still_loading_until_the_budget(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = run_smoke(tmp_path, "--url", url, "--prompt", "hi", "--ready-timeout", "1")
    assert run.code == 1
    assert run.failures == ["not ready within 1s: /health/ready last answered: connection refused"]


# Each protocol's request as the server received it, whole: the prompt, the model, the token
# limit (--max-tokens 7) in the protocol's own field, and greedy decoding (temperature 0, or
# do_sample false). Compared as JSON text, so 0 is not 0.0 and false is not 0.
@pytest.mark.parametrize(
    ("protocol", "path", "reply", "sent"),
    [
        ("openai-chat", "/v1/chat/completions",
         {"choices": [{"message": {"role": "assistant", "content": "chat says hi"}}]},
         {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 7,
          "temperature": 0, "stream": False}),
        ("openai-completions", "/v1/completions",
         {"choices": [{"text": "completion says hi"}]},
         {"model": "m", "prompt": "hello", "max_tokens": 7, "temperature": 0, "stream": False}),
        ("truss", "/v1/models/m:predict", {"output": "truss says hi"},
         {"prompt": "hello", "max_tokens": 7, "temperature": 0}),
        ("kserve-v2", "/v2/models/m/infer",
         {"outputs": [{"name": "o", "datatype": "BYTES", "shape": [1],
                       "data": ["kserve says hi"]}]},
         {"inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES",
                      "data": ["hello"]}],
          "parameters": {"max_tokens": 7, "temperature": 0}}),
        ("tgi", "/generate",
         {"generated_text": "tgi says hi", "details": {"generated_tokens": 3}},
         {"inputs": "hello", "parameters": {"max_new_tokens": 7, "do_sample": False}}),
        ("cog", "/predictions", {"status": "succeeded", "output": ["cog ", "says ", "hi"]},
         {"input": {"prompt": "hello", "max_new_tokens": 7, "temperature": 0}}),
    ],
)  # fmt: skip
def test_each_protocol_speaks_its_shape(
    tmp_path: Path, protocol: str, path: str, reply: Any, sent: Any
) -> None:
    with running({"/health/ready": ready_route, path: lambda _: json_answer(200, reply)}) as stub:
        code, verdict, _ = run_smoke(
            tmp_path, "--url", stub.url, "--protocol", protocol, "--model", "m",
            "--prompt", "hello", "--max-tokens", "7", "--expect-regex", "says hi$",
        )  # fmt: skip
    assert code == 0, verdict
    assert verdict["cases"][1]["output"].endswith("says hi")
    (body,) = stub.received[path]
    assert json.dumps(body, sort_keys=True) == json.dumps(sent, sort_keys=True)


def test_http_protocol_with_jsonpath(tmp_path: Path) -> None:
    (tmp_path / "pipeline-kit.yaml").write_text(
        "smoke:\n  protocol: http\n  http:\n    path: /api/{model}/run\n"
        '    body: \'{"q": {prompt}, "n": {max_tokens}, "m": {model}, "greedy": true}\'\n'
        '    output: "$.result.choices[1].text"\n'
    )
    answer = {"result": {"choices": [{"text": "no"}, {"text": "yes it works"}]}}
    routes = {"/health/ready": ready_route, "/api/m/run": lambda _: json_answer(200, answer)}
    with running(routes) as stub:
        code, verdict, _ = run_smoke(
            tmp_path, "--url", stub.url, "--model", "m", "--prompt", 'say "ping"',
            "--expect-contains", "works",
        )  # fmt: skip
    assert code == 0, verdict
    assert verdict["cases"][1]["output"] == "yes it works"
    (body,) = stub.received["/api/m/run"]
    assert json.dumps(body) == json.dumps({"q": 'say "ping"', "n": 32, "m": "m", "greedy": True})


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
