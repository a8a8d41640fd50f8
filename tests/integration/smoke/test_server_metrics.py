"""The gate reads the model server's own metrics (``smoke.metrics``): once the server is ready
and again at the end, against a stub whose /metrics counts the requests it really served, as a
vLLM server's would. Each verdict in the failing direction with its message, and the passing
one; the servers are ModelServerStub routes and the gate the ``pipeline-kit smoke`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.services.fake_model_server import (
    ModelServerStub,
    chat_route,
    json_answer,
    ready_route,
    run_smoke,
    running,
)

CHAT = "/v1/chat/completions"


def _config(tmp_path: Path, metrics: str) -> None:
    (tmp_path / "pipeline-kit.yaml").write_text(
        "smoke:\n  model: m\n  repeat: 3\n  requests:\n"
        "    - name: sonnet\n      prompt: Shall I compare thee\n      contains: summer\n"
        f"  metrics:\n{metrics}"
    )


def _vllm_metrics(stub: ModelServerStub, waiting: int = 0) -> Any:
    """vLLM's names, its counters counting what the stub served on the chat route."""

    def route(_: Any) -> tuple[int, bytes, str]:
        served = stub.hits.get(CHAT, 0)
        text = (
            "# TYPE vllm:request_success_total counter\n"
            f'vllm:request_success_total{{finished_reason="stop",model_name="m"}} {served}.0\n'
            "# TYPE vllm:generation_tokens_total counter\n"
            f'vllm:generation_tokens_total{{model_name="m"}} {served * 4}.0\n'
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="m"}} {waiting}.0\n'
        )
        return 200, text.encode(), "text/plain; version=0.0.4"

    return route


@pytest.mark.parametrize(("most", "passed"), [("2", False), ("3", True)])
def test_what_the_requests_added_against_a_limit(tmp_path: Path, most: str, passed: bool) -> None:
    """Three requests served: the request counter rose by 3, over a limit of 2, within 3."""
    _config(tmp_path, f"    max:\n      vllm:request_success_total: {most}\n")
    with running({"/health/ready": ready_route, CHAT: chat_route("to a summer's day")}) as stub:
        stub.routes["/metrics"] = _vllm_metrics(stub)
        run = run_smoke(tmp_path, "--url", stub.url)
        scrapes = stub.hits["/metrics"]
    case = run.cases["server metrics"]
    assert case["passed"] is passed and run.code == (0 if passed else 1)
    figures = (
        "requests +3 (vllm:request_success_total); generated tokens +12 "
        "(vllm:generation_tokens_total); waiting 0 (vllm:num_requests_waiting)"
    )
    over = f"vllm:request_success_total rose by 3, at most {most}; "
    assert case["message"] == (figures if passed else over + figures)
    assert scrapes == 2


def test_a_gauge_is_judged_by_where_it_ended(tmp_path: Path) -> None:
    _config(tmp_path, "    max:\n      vllm:num_requests_waiting: 4\n")
    with running({"/health/ready": ready_route, CHAT: chat_route("to a summer's day")}) as stub:
        stub.routes["/metrics"] = _vllm_metrics(stub, waiting=9)
        run = run_smoke(tmp_path, "--url", stub.url)
    case = run.cases["server metrics"]
    assert run.code == 1 and not case["passed"]
    assert case["message"].startswith("vllm:num_requests_waiting is 9, at most 4; requests +3 ")


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (None, "GET /metrics: HTTP 404"),
        (lambda _: (200, b"<html>metrics</html>\n", "text/html"),
         "GET /metrics: not a Prometheus exposition: line 1 is not a sample: "
         "'<html>metrics</html>'"),
    ],
    ids=["not served", "not an exposition"],
)  # fmt: skip
def test_metrics_asked_for_but_not_there_fail_the_case(
    tmp_path: Path, route: Any, message: str
) -> None:
    _config(tmp_path, "    path: /metrics\n")
    with running({"/health/ready": ready_route, CHAT: chat_route("to a summer's day")}) as stub:
        if route is not None:
            stub.routes["/metrics"] = route
        run = run_smoke(tmp_path, "--url", stub.url)
    case = run.cases["server metrics"]
    assert run.code == 1 and not case["passed"]
    assert case["message"].startswith(message), case["message"]
    assert all(c["passed"] for name, c in run.cases.items() if name != "server metrics")


def test_a_limit_on_a_metric_the_server_does_not_have_fails(tmp_path: Path) -> None:
    _config(tmp_path, "    max:\n      sglang:num_queue_reqs: 4\n")
    with running({"/health/ready": ready_route, CHAT: chat_route("to a summer's day")}) as stub:
        stub.routes["/metrics"] = _vllm_metrics(stub)
        run = run_smoke(tmp_path, "--url", stub.url)
    case = run.cases["server metrics"]
    assert run.code == 1
    assert case["message"].startswith("sglang:num_queue_reqs is not in /metrics; requests +3 ")


def test_without_the_section_metrics_are_not_read(tmp_path: Path) -> None:
    (tmp_path / "pipeline-kit.yaml").write_text(
        "smoke:\n  model: m\n  requests:\n    - prompt: Shall I compare thee\n"
    )
    with running({"/health/ready": ready_route, CHAT: chat_route("to a summer's day")}) as stub:
        stub.routes["/metrics"] = lambda _: json_answer(500, {})
        run = run_smoke(tmp_path, "--url", stub.url)
        hits = dict(stub.hits)
    assert run.code == 0 and "server metrics" not in run.cases
    assert "/metrics" not in hits
