"""The smoke gate's budgets, token bounds and streams, each verdict in the failing direction with
the exact message the gate writes, and beside it the passing direction.

The servers are ModelServerStub routes on loopback (tests/support/services/fake_model_server.py)
and the gate is the ``pipeline-kit smoke`` command run as a separate process. A late answer or
event is held by the server for several times the budget, counted from when the server read
the request, so the client's measure (its clock started before it sent) is never below it.
Where the client must give up first, the server waits on an Event set only after the command
has ended.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters import inference
from tests.support.services.fake_model_server import (
    DONE,
    Route,
    Stream,
    chat_chunk,
    chat_route,
    completion_chunk,
    event_stream,
    json_answer,
    ready_route,
    reasoning_chunk,
    role_chunk,
    run_smoke,
    running,
    sse,
)

CHAT = "/v1/chat/completions"


def seconds_in(pattern: str, message: str) -> float:
    """The seconds the gate wrote where ``pattern`` has its group; the whole message must match."""
    match = re.fullmatch(pattern, message)
    assert match, f"{message!r} does not match {pattern!r}"
    return float(match[1])


# -- latency ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("budget", "passed"), [("0.2", False), ("5", True)])
def test_latency_budget_per_request(tmp_path: Path, budget: str, passed: bool) -> None:
    """The server answers correctly after 0.6 s: over a 0.2 s budget, within a 5 s one."""
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = stub.late(chat_route("late but right"), 0.6)
        run = run_smoke(tmp_path, "--url", stub.url, "--prompt", "hi", "--max-latency", budget)
    case = run.cases["request 1"]
    if passed:
        assert run.code == 0 and case["passed"], run.verdict
        assert case["output"] == "late but right"
    else:
        assert run.code == 1 and not case["passed"]
        assert run.failures == [case["message"]]
        assert seconds_in(r"took (\d+\.\d\d)s, budget 0\.2s", case["message"]) >= 0.6


@pytest.mark.parametrize(("slow", "passed"), [(2, False), (1, True)])
def test_p95_budget_over_twenty_requests(tmp_path: Path, slow: int, passed: bool) -> None:
    """Nearest rank: the p95 of 20 latencies is the 19th smallest, so one answer held 1 s among
    20 stays within a 0.3 s budget and two do not. Every request passes on its own (no
    per-request budget): the p95 case alone decides."""
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = stub.late(chat_route("fine"), 1.0, hits=range(1, slow + 1))
        run = run_smoke(
            tmp_path, "--url", stub.url, "--prompt", "hi", "--repeat", "20", "--p95", "0.3"
        )
    assert stub.hits[CHAT] == 20
    requests = [case for name, case in run.cases.items() if name.startswith("request 1 #")]
    assert [case["passed"] for case in requests] == [True] * 20
    assert (
        sorted(case["seconds"] >= 1.0 for case in requests) == [False] * (20 - slow) + [True] * slow
    )
    p95 = run.cases["latency p95"]
    shown = seconds_in(r"p95 (\d+\.\d\d)s over 20 requests, budget 0\.3s", p95["message"])
    if passed:
        assert run.code == 0 and p95["passed"], run.verdict
        assert shown <= 0.3
    else:
        assert run.code == 1 and not p95["passed"]
        assert run.failures == [p95["message"]]
        assert shown >= 1.0


# -- streams ---------------------------------------------------------------------------------

SUMMER = [sse(chat_chunk("to a")), sse(chat_chunk(" summer")), DONE]


def test_time_to_first_token_budget(tmp_path: Path) -> None:
    """Two streams that both take over 1 s: one holds its first event back for 1 s and fails
    its 0.3 s time-to-first-token budget; the other sends its first event at once, holds the
    second, and passes: the budget is on the first event, not on the whole answer."""
    (tmp_path / "pipeline-kit.yaml").write_text(
        "smoke:\n  stream: true\n  model: m\n  requests:\n"
        "    - name: late first\n      prompt: first\n      max_ttft: 0.3\n"
        "    - name: late second\n      prompt: second\n      max_ttft: 0.3\n"
    )
    with running({"/health/ready": ready_route}) as stub:

        def answer(body: Any) -> Stream:
            late = 0 if body["messages"][0]["content"] == "first" else 1
            return event_stream(SUMMER, lambda n: stub.hold(1.0) if n == late else None)

        stub.routes[CHAT] = answer
        run = run_smoke(tmp_path, "--url", stub.url)
    first, second = run.cases["late first"], run.cases["late second"]
    assert run.code == 1 and not first["passed"]
    assert run.failures == [first["message"]]
    ttft = r"time to first token (\d+\.\d\d)s, budget 0\.3s"
    assert seconds_in(ttft, first["message"]) >= 1.0
    assert first["output"] == "to a summer"
    assert second["passed"] and second["output"] == "to a summer", run.verdict
    assert second["seconds"] >= 1.0
    sent = {"model": "m", "max_tokens": 32, "temperature": 0, "stream": True}
    assert stub.received[CHAT] == [
        {**sent, "messages": [{"role": "user", "content": "first"}]},
        {**sent, "messages": [{"role": "user", "content": "second"}]},
    ]


@pytest.mark.parametrize(
    ("protocol", "path", "events", "passed"),
    [
        ("openai-chat", CHAT, [role_chunk(), chat_chunk("to a"), chat_chunk(" summer")], False),
        ("openai-chat", CHAT,
         [role_chunk(), chat_chunk(""), chat_chunk("to a"), chat_chunk(" summer")], False),
        ("openai-completions", "/v1/completions",
         [completion_chunk(""), completion_chunk("to a"), completion_chunk(" summer")], False),
        ("openai-chat", CHAT,
         [role_chunk(), reasoning_chunk("hmm"), chat_chunk("to a"), chat_chunk(" summer")], True),
    ],
    ids=["role-first", "role-then-empty", "empty-text-first", "reasoning-counts"],
)  # fmt: skip
def test_time_to_first_token_is_the_first_generated_text(
    tmp_path: Path, protocol: str, path: str, events: list[Any], passed: bool
) -> None:
    """OpenAI-compatible servers send a chunk without generated text first (the role alone, or
    empty text) as soon as the request is taken. The server sends those at once and holds the
    first event that carries text (content, text or reasoning) for 1 s: time to first token is
    measured at that event, so a 0.3 s budget fails; the same stream with reasoning sent at
    once (it is generated text too) passes."""
    (tmp_path / "pipeline-kit.yaml").write_text(
        f"smoke:\n  protocol: {protocol}\n  stream: true\n  model: m\n  requests:\n"
        "    - name: first token late\n      prompt: hi\n      max_ttft: 0.3\n"
    )
    late = len(events) - 2  # the event before the last
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[path] = lambda _: event_stream(
            [*map(sse, events), DONE], lambda n: stub.hold(1.0) if n == late else None
        )
        run = run_smoke(tmp_path, "--url", stub.url)
    case = run.cases["first token late"]
    assert case["output"] == "to a summer"
    if passed:
        assert run.code == 0 and case["passed"], run.verdict
        assert case["seconds"] >= 1.0
    else:
        assert run.code == 1 and not case["passed"]
        assert run.failures == [case["message"]]
        ttft = r"time to first token (\d+\.\d\d)s, budget 0\.3s"
        assert seconds_in(ttft, case["message"]) >= 1.0


@pytest.mark.parametrize("done", [True, False], ids=["with-done", "without-done"])
@pytest.mark.parametrize(
    ("protocol", "path", "chunk", "sent"),
    [
        ("openai-chat", CHAT, chat_chunk,
         {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 32,
          "temperature": 0, "stream": True}),
        ("openai-completions", "/v1/completions", completion_chunk,
         {"model": "m", "prompt": "hi", "max_tokens": 32, "temperature": 0, "stream": True}),
    ],
)  # fmt: skip
def test_a_stream_that_ends_is_read_whole(
    tmp_path: Path, protocol: str, path: str, chunk: Any, sent: Any, done: bool
) -> None:
    """``[DONE]`` or not, a stream ends when the server closes it: every event counts, in order.
    The request asks for the stream (``"stream": true``) and greedy decoding."""
    events = [sse(chunk(text)) for text in ("to", " a", " summer's", " day?")]
    events += [DONE] if done else []
    routes: dict[str, Route] = {"/health/ready": ready_route, path: lambda _: event_stream(events)}
    with running(routes) as stub:
        run = run_smoke(
            tmp_path, "--url", stub.url, "--protocol", protocol, "--stream", "--model", "m",
            "--prompt", "hi", "--expect-regex", r"^to a summer's day\?$",
        )  # fmt: skip
    assert run.code == 0, run.verdict
    assert run.cases["request 1"]["output"] == "to a summer's day?"
    assert stub.received[path] == [sent]
    assert not stub.hung_up.is_set()  # read to its end, not abandoned


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda: event_stream([DONE]),
         "openai-chat: malformed reply: the stream carried no events"),
        (lambda: event_stream([b"data: hello\n\n", DONE]),
         "openai-chat: malformed reply: stream event is not JSON: 'hello'"),
        (lambda: event_stream([sse({"id": 1}), DONE]),
         "openai-chat: malformed reply: no ['choices'] in the reply"),
        (lambda: Stream(iter([b'{"error": "overloaded"}']), 503, "application/json"),
         'openai-chat {url}/v1/chat/completions: expected HTTP 200, got HTTP 503: '
         '{{"error": "overloaded"}}'),
        (lambda: event_stream([sse(chat_chunk("  ")), DONE]), "empty output"),
    ],
    ids=["only-done", "not-json", "wrong-shape", "http-503", "blank"],
)  # fmt: skip
def test_a_bad_stream_fails_the_gate(tmp_path: Path, answer: Any, expected: str) -> None:
    routes: dict[str, Route] = {"/health/ready": ready_route, CHAT: lambda _: answer()}
    with running(routes) as stub:
        run = run_smoke(tmp_path, "--url", stub.url, "--stream", "--prompt", "hi")
    assert run.code == 1
    assert run.failures == [expected.format(url=stub.url)]


def test_a_stream_whose_first_event_never_comes_times_out(tmp_path: Path) -> None:
    """The headers arrive at once, the first event only after the command has ended: the read
    times out at the request budget."""
    release = threading.Event()
    routes: dict[str, Route] = {
        "/health/ready": ready_route,
        CHAT: lambda _: event_stream(SUMMER, lambda n: release.wait(30) if n == 0 else None),
    }
    with running(routes) as stub:
        try:
            start = time.monotonic()
            run = run_smoke(
                tmp_path, "--url", stub.url, "--stream", "--prompt", "hi", "--request-timeout", "1"
            )
            took = time.monotonic() - start
        finally:
            release.set()
    assert run.code == 1
    assert run.failures == [f"openai-chat {stub.url}{CHAT}: timed out after 1s"]
    assert took < 10


def test_a_stream_that_never_ends_times_out_in_total(tmp_path: Path) -> None:
    """An event every 0.05 s, never a last one: no single read waits long, yet the stream as a
    whole overruns its 1 s budget; the client gives up and hangs up."""
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = lambda _: stub.trickle(sse(chat_chunk("more ")), every=0.05)
        start = time.monotonic()
        run = run_smoke(
            tmp_path, "--url", stub.url, "--stream", "--prompt", "hi", "--request-timeout", "1"
        )
        took = time.monotonic() - start
        assert stub.hung_up.wait(10)
    assert run.code == 1
    assert run.failures == [f"openai-chat {stub.url}{CHAT}: stream timed out after 1s"]
    assert took < 10


def test_a_stream_trickling_bytes_times_out_at_its_deadline(tmp_path: Path) -> None:
    """A byte every 0.2 s and never a whole line: no read waits long and no event ever
    completes, yet the request ends at its 1 s budget and the client hangs up. The bound on
    the command (30 s) only keeps a broken client from hanging the test."""
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = lambda _: stub.trickle(b":", every=0.2)
        run = run_smoke(
            tmp_path, "--url", stub.url, "--stream", "--prompt", "hi", "--request-timeout", "1",
            timeout=30,
        )  # fmt: skip
        assert stub.hung_up.wait(10)
    assert run.code == 1
    assert run.failures == [f"openai-chat {stub.url}{CHAT}: timed out after 1s"]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole-body"])
def test_the_request_ends_at_its_total_deadline(stream: bool) -> None:
    """The adapter itself, timed: a body trickled a byte every 0.1 s, streamed or read whole,
    ends at the 1 s deadline and not much later (the margin is for a loaded machine). The call
    runs in a thread the test waits for on an Event, with a generous bound."""
    budget, margin = 1.0, 1.5
    outcome: dict[str, Any] = {}
    done = threading.Event()
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = lambda _: stub.trickle(b":", every=0.1)

        def call() -> None:
            start = time.monotonic()
            send = inference.post_stream if stream else inference.post
            outcome["reply"] = send(stub.url + CHAT, {"stream": stream}, budget)
            outcome["took"] = time.monotonic() - start
            done.set()

        threading.Thread(target=call, daemon=True).start()
        ended = done.wait(30)
    assert ended, "the request did not end within 30 s"
    reply = outcome["reply"]
    assert reply.status is None and reply.error == "timed out after 1s"
    assert budget <= outcome["took"] < budget + margin, outcome["took"]


# -- token bounds ----------------------------------------------------------------------------


def tgi_route(text: str, generated_tokens: int) -> Route:
    return lambda _: json_answer(
        200, {"generated_text": text, "details": {"generated_tokens": generated_tokens}}
    )


@pytest.mark.parametrize(
    ("protocol", "route", "bounds", "contains", "expected"),
    [
        ("openai-chat", chat_route("to a"), (3, 32), None, "2 tokens, expected at least 3"),
        ("openai-chat", chat_route("to a summer"), (3, 32), None, None),
        ("openai-chat", chat_route("one two three four five six", completion_tokens=2), (3, 32),
         None, "2 tokens, expected at least 3"),
        ("openai-chat", chat_route("one", completion_tokens=3), (3, 32), None, None),
        ("openai-chat", chat_route("a b c d e"), (1, 4), None, "5 tokens, expected at most 4"),
        ("openai-chat", chat_route("a b c d"), (1, 4), None, None),
        ("openai-chat", chat_route("short", completion_tokens=9), (1, 8), None,
         "9 tokens, expected at most 8"),
        ("tgi", tgi_route("short", 9), (1, 8), None, "9 tokens, expected at most 8"),
        ("tgi", tgi_route("two words", 1), (2, 8), None, "1 tokens, expected at least 2"),
        ("openai-chat", chat_route(""), (3, 32), None, "empty output"),
        ("openai-chat", chat_route("to a"), (3, 32), "summer",
         "expected the output to contain 'summer', got 'to a'; 2 tokens, expected at least 3"),
    ],
    ids=["too-few-words", "enough-words", "too-few-reported", "enough-reported",
         "too-many-words", "at-most-words", "too-many-reported", "tgi-too-many",
         "tgi-too-few", "empty-is-only-empty", "every-problem-said"],
)  # fmt: skip
def test_token_bounds(
    tmp_path: Path,
    protocol: str,
    route: Route,
    bounds: tuple[int, int],
    contains: str | None,
    expected: str | None,
) -> None:
    """min_tokens and max_tokens per request (from the config): the count is the one the server
    reports (usage.completion_tokens, details.generated_tokens), else the words of the output.
    max_tokens is also what the request asks of the server."""
    low, high = bounds
    request = f"    - name: bounds\n      prompt: hi\n      min_tokens: {low}\n"
    request += f"      max_tokens: {high}\n" + (f"      contains: {contains}\n" if contains else "")
    (tmp_path / "pipeline-kit.yaml").write_text(
        f"smoke:\n  protocol: {protocol}\n  requests:\n{request}"
    )
    path = CHAT if protocol == "openai-chat" else "/generate"
    with running({"/health/ready": ready_route, path: route}) as stub:
        run = run_smoke(tmp_path, "--url", stub.url)
    (body,) = stub.received[path]
    limit = (
        body["max_tokens"] if protocol == "openai-chat" else body["parameters"]["max_new_tokens"]
    )
    assert limit == high
    case = run.cases["bounds"]
    if expected is None:
        assert run.code == 0 and case["passed"], run.verdict
    else:
        assert run.code == 1 and not case["passed"]
        assert run.failures == [expected]


@pytest.mark.parametrize(("flag", "asked"), [((), [16, 32]), (("--max-tokens", "7"), [7, 7])])
def test_the_max_tokens_flag_wins_over_the_config(
    tmp_path: Path, flag: tuple[str, ...], asked: list[int]
) -> None:
    """A flag overrides the config: ``--max-tokens`` is what every request asks for and the
    bound it is checked against, over a request's own ``max_tokens`` and over the section's
    default. Without it, each request keeps its own."""
    (tmp_path / "pipeline-kit.yaml").write_text(
        "smoke:\n  requests:\n"
        "    - name: own bound\n      prompt: one\n      max_tokens: 16\n"
        "    - name: default bound\n      prompt: two\n"
    )
    words = " ".join(["word"] * 10)  # within 16 and 32, over 7
    with running({"/health/ready": ready_route, CHAT: chat_route(words)}) as stub:
        run = run_smoke(tmp_path, "--url", stub.url, *flag)
    assert [body["max_tokens"] for body in stub.received[CHAT]] == asked
    if flag:
        assert run.code == 1
        assert run.failures == ["10 tokens, expected at most 7"] * 2
    else:
        assert run.code == 0, run.verdict


@pytest.mark.parametrize(("flag", "passed"), [((), True), (("--max-latency", "0.2"), False)])
def test_the_max_latency_flag_wins_over_the_config(
    tmp_path: Path, flag: tuple[str, ...], passed: bool
) -> None:
    """The server answers after 0.6 s: within the request's own 5 s budget from the config,
    over the 0.2 s the flag gives, which wins."""
    (tmp_path / "pipeline-kit.yaml").write_text(
        "smoke:\n  requests:\n    - name: own budget\n      prompt: hi\n      max_latency: 5\n"
    )
    with running({"/health/ready": ready_route}) as stub:
        stub.routes[CHAT] = stub.late(chat_route("late but right"), 0.6)
        run = run_smoke(tmp_path, "--url", stub.url, *flag)
    case = run.cases["own budget"]
    if passed:
        assert run.code == 0 and case["passed"], run.verdict
    else:
        assert run.code == 1 and not case["passed"]
        assert seconds_in(r"took (\d+\.\d\d)s, budget 0\.2s", case["message"]) >= 0.6
