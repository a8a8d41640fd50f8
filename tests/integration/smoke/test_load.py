"""The gate under load (``smoke.load``): requests really in flight together, and each limit
(error rate, tokens per second, latency and time-to-first-token p95, the duration that stops
the load) in the failing direction with the message the gate writes, and beside it the passing
one.

The servers are ModelServerStub routes on loopback (tests/support/services/fake_model_server.py)
and the gate is the ``pipeline-kit smoke`` command run as a separate process. Concurrency is
proved by a barrier in the server: a load request is answered only once ``concurrency`` of them
are in the server together, so a gate that sent fewer at once would get 500s. Slow answers are
held by the server, counted from when it read the request, so the client never measures less.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.gitrepo import cli
from tests.support.services.fake_model_server import (
    DONE,
    Route,
    chat_chunk,
    chat_route,
    event_stream,
    json_answer,
    ready_route,
    run_smoke,
    running,
    sse,
)

CHAT = "/v1/chat/completions"
SUMMER_EVENTS = [sse(chat_chunk("to a")), sse(chat_chunk(" summer")), DONE]


def _config(tmp_path: Path, load: str, *, stream: bool = False) -> None:
    (tmp_path / "pipeline-kit.yaml").write_text(
        f"smoke:\n  model: m\n  stream: {'true' if stream else 'false'}\n  requests:\n"
        "    - name: sonnet\n      prompt: Shall I compare thee\n      contains: summer\n"
        f"  load:\n{load}"
    )


def _after_the_first(first: Route, then: Route) -> Route:
    """``first`` for the gate's own request (the first hit), ``then`` for the load's."""
    hits = iter(range(1_000_000))

    def route(body: Any) -> Any:
        return first(body) if next(hits) == 0 else then(body)

    return route


def test_the_load_is_in_flight_together_and_passes_its_limits(tmp_path: Path) -> None:
    _config(tmp_path, "    concurrency: 4\n    requests: 8\n")
    answer = chat_route("to a summer's day", completion_tokens=5)
    together = threading.Barrier(4, timeout=20)

    def all_at_once(body: Any) -> Any:
        try:
            together.wait()
        except threading.BrokenBarrierError:
            return json_answer(500, {"error": "fewer than 4 requests in flight together"})
        return answer(body)

    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = _after_the_first(answer, all_at_once)
        run = run_smoke(tmp_path, "--url", stub.url)
        hits = stub.hits[CHAT]
    assert run.code == 0, run.verdict
    assert run.cases["load: errors"]["message"] == "0 of 8 failed (0.0%), limit 0.0%"
    assert hits == 1 + 8


def test_three_at_a_time_do_not_pass_a_server_that_needs_four(tmp_path: Path) -> None:
    """The failing direction of the barrier: with concurrency 3 the fourth never comes."""
    _config(tmp_path, "    concurrency: 3\n    requests: 3\n")
    answer = chat_route("to a summer's day")
    together = threading.Barrier(4, timeout=1)

    def all_at_once(body: Any) -> Any:
        try:
            together.wait()
        except threading.BrokenBarrierError:
            return json_answer(500, {"error": "fewer than 4 requests in flight together"})
        return answer(body)

    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = _after_the_first(answer, all_at_once)
        run = run_smoke(tmp_path, "--url", stub.url)
    errors = run.cases["load: errors"]
    assert run.code == 1 and not errors["passed"]
    assert errors["message"].startswith("3 of 3 failed (100.0%), limit 0.0%; first: load ")
    assert "HTTP 500" in errors["message"]


@pytest.mark.parametrize(("limit", "passed"), [("0", False), ("0.25", True)])
def test_the_error_rate_against_its_limit(tmp_path: Path, limit: str, passed: bool) -> None:
    """Every fourth load request is answered 500: 2 of 8 fail, over a limit of 0, within 25%."""
    _config(tmp_path, f"    concurrency: 2\n    requests: 8\n    max_error_rate: {limit}\n")
    answer = chat_route("to a summer's day")
    numbers = iter(range(1_000_000))
    lock = threading.Lock()

    def every_fourth_fails(body: Any) -> Any:
        with lock:
            number = next(numbers)
        if number % 4 == 3:
            return json_answer(500, {"error": "overloaded"})
        return answer(body)

    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = _after_the_first(answer, every_fourth_fails)
        run = run_smoke(tmp_path, "--url", stub.url)
    errors = run.cases["load: errors"]
    assert errors["passed"] is passed and run.code == (0 if passed else 1)
    shown = "0.0%" if limit == "0" else "25.0%"
    assert errors["message"].startswith(f"2 of 8 failed (25.0%), limit {shown}; first: load ")


@pytest.mark.parametrize(("least", "passed"), [("1000", False), ("1", True)])
def test_tokens_per_second_against_its_floor(tmp_path: Path, least: str, passed: bool) -> None:
    """Each answer holds 0.3 s and reports 10 tokens; 4 requests, 2 at a time, last at least
    0.6 s: at most 67 tokens/s, under 1000 and over 1."""
    _config(tmp_path, f"    concurrency: 2\n    requests: 4\n    min_tokens_per_second: {least}\n")
    answer = chat_route("to a summer's day", completion_tokens=10)
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = _after_the_first(answer, stub.late(answer, 0.3))
        run = run_smoke(tmp_path, "--url", stub.url)
    case = run.cases["load: tokens per second"]
    assert case["passed"] is passed and run.code == (0 if passed else 1)
    match = re.match(
        r"(\d+\.\d) tokens/s, at least (\S+) expected; 4 requests in ", case["message"]
    )
    assert match, case["message"]
    assert float(match[1]) <= 40 / 0.6 and match[2] == least


@pytest.mark.parametrize(("budget", "passed"), [("0.1", False), ("30", True)])
def test_latency_p95_under_load(tmp_path: Path, budget: str, passed: bool) -> None:
    _config(tmp_path, f"    concurrency: 2\n    requests: 4\n    p95: {budget}\n")
    answer = chat_route("to a summer's day")
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = _after_the_first(answer, stub.late(answer, 0.4))
        run = run_smoke(tmp_path, "--url", stub.url)
    case = run.cases["load: latency p95"]
    assert case["passed"] is passed and run.code == (0 if passed else 1)
    match = re.fullmatch(
        rf"p95 (\d+\.\d\d)s over 4 requests under load, budget {re.escape(budget)}s",
        case["message"],
    )
    assert match and float(match[1]) >= 0.4, case["message"]


@pytest.mark.parametrize(("budget", "passed"), [("0.2", False), ("30", True)])
def test_time_to_first_token_p95_under_load(tmp_path: Path, budget: str, passed: bool) -> None:
    """Streams whose first event is held 0.6 s: over a 0.2 s budget, within 30 s."""
    _config(tmp_path, f"    concurrency: 2\n    requests: 4\n    max_ttft_p95: {budget}\n",
            stream=True)  # fmt: skip
    with running({"/health/ready": ready_route}) as stub:

        def late_first(_: Any) -> Any:
            return event_stream(SUMMER_EVENTS, lambda n: stub.hold(0.6) if n == 0 else None)

        def at_once(_: Any) -> Any:
            return event_stream(SUMMER_EVENTS)

        stub.routes[CHAT] = _after_the_first(at_once, late_first)
        run = run_smoke(tmp_path, "--url", stub.url)
    case = run.cases["load: time to first token p95"]
    assert case["passed"] is passed and run.code == (0 if passed else 1)
    match = re.fullmatch(
        rf"time to first token p95 (\d+\.\d\d)s, budget {re.escape(budget)}s", case["message"]
    )
    assert match and float(match[1]) >= 0.6, case["message"]


def test_the_load_stops_at_its_duration(tmp_path: Path) -> None:
    """One at a time, each answer held 1.5 s, for at most 1 s: the first request ends after
    the duration, so no second one starts, of the 100 asked for."""
    _config(
        tmp_path,
        "    concurrency: 1\n    requests: 100\n    duration: 1s\n"
        "    min_tokens_per_second: 0.0001\n",
    )
    answer = chat_route("to a summer's day")
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = _after_the_first(answer, stub.late(answer, 1.5))
        run = run_smoke(tmp_path, "--url", stub.url)
        hits = stub.hits[CHAT]
    assert run.code == 0, run.verdict
    assert run.cases["load: errors"]["message"] == "0 of 1 failed (0.0%), limit 0.0%"
    assert "; 1 requests (stopped at 1s) in " in run.cases["load: tokens per second"]["message"]
    assert hits == 1 + 1


@pytest.mark.parametrize(
    ("load", "key"),
    [
        ("    concurrency: 65\n    requests: 8\n", "concurrency"),
        ("    concurrency: 0\n    requests: 8\n", "concurrency"),
        ("    concurrency: 2\n", "requests"),
        ("    concurrency: 2\n    requests: 8\n    max_error_rate: 2\n", "max_error_rate"),
        ("    concurrency: 2\n    requests: 8\n    duration: soon\n", "duration"),
    ],
    ids=["too many at once", "none at once", "no count", "a rate over 1", "no duration"],
)
def test_a_bad_load_section_is_refused_before_anything_is_sent(
    tmp_path: Path, load: str, key: str
) -> None:
    _config(tmp_path, load)
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = chat_route("to a summer's day")
        result = cli("smoke", "--url", stub.url, cwd=tmp_path)
        hits = dict(stub.hits)
    assert result.returncode == 2, result.stderr
    assert "smoke.load" in result.stderr and key in result.stderr
    assert hits == {}
