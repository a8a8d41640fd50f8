"""The smoke gate: wait until the model can answer, then ask it and check every answer.

Readiness: connection refused and 503 mean "still loading"; the gate polls with capped backoff
and reports progress at least every 10 s, until the budget runs out. Then each request is sent
``repeat`` times (temperature 0) and checked: status, the protocol's reply shape, non-empty
output, contains/regex, token bounds, latency per request, p95, time to first token.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline_kit.adapters import inference
from pipeline_kit.smoke.protocols import BadReply, Output, RequestSpec, SmokeProtocol

PROGRESS_EVERY_S = 10.0
MAX_POLL_S = 5.0


@dataclass(frozen=True)
class SmokeRequest:
    prompt: str
    name: str = ""
    expect_contains: str | None = None
    expect_regex: str | None = None
    min_tokens: int = 1
    max_tokens: int = 32  # asked of the server, and the upper bound checked
    max_latency: float | None = None  # seconds, per request
    max_ttft: float | None = None  # seconds, when streaming


@dataclass(frozen=True)
class SmokePlan:
    url: str  # base URL of the server
    protocol: SmokeProtocol
    model: str
    requests: tuple[SmokeRequest, ...]
    ready_path: str = "/health/ready"
    ready_timeout: float = 900.0
    request_timeout: float = 60.0
    repeat: int = 1
    p95: float | None = None
    stream: bool = False
    digest: str | None = None


@dataclass(frozen=True)
class SmokeCase:
    name: str
    passed: bool
    message: str
    seconds: float
    output: str = ""


@dataclass
class SmokeVerdict:
    plan: SmokePlan
    cases: list[SmokeCase] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(case.passed for case in self.cases)

    @property
    def failures(self) -> list[SmokeCase]:
        return [case for case in self.cases if not case.passed]


Clock = Callable[[], float]
Alive = Callable[[], str | None]  # None while the server runs, else why it stopped


def wait_ready(
    plan: SmokePlan,
    say: Callable[[str], None],
    clock: Clock = time.monotonic,
    alive: Alive | None = None,
) -> SmokeCase:
    url = plan.url.rstrip("/") + plan.ready_path
    start = clock()
    deadline = start + plan.ready_timeout
    delay, last_said = 0.2, start
    last = "no answer yet"
    while True:
        remaining = deadline - clock()
        reply = inference.get(url, timeout=max(0.1, min(plan.request_timeout, remaining, 10.0)))
        elapsed = clock() - start
        if reply.status == 200:
            say(f"ready after {elapsed:.1f}s")
            return SmokeCase(
                "readiness", True, f"{plan.ready_path} answered 200 after {elapsed:.1f}s", elapsed
            )
        last = reply.excerpt()
        stopped = alive() if alive is not None else None
        if stopped:
            return SmokeCase(
                "readiness",
                False,
                f"the server stopped before it was ready: {stopped}; {plan.ready_path} last "
                f"answered: {last}",
                clock() - start,
            )
        loading = reply.status in (None, 503) or reply.error is not None
        if not loading:
            say(f"{plan.ready_path}: {last} (not a loading answer; still waiting)")
        if clock() - last_said >= PROGRESS_EVERY_S:
            budget = f"{elapsed:.0f}s of {plan.ready_timeout:.0f}s"
            say(f"waiting for {plan.ready_path}: {budget}, last answer: {last}")
            last_said = clock()
        if clock() + delay > deadline:
            return SmokeCase(
                "readiness",
                False,
                f"not ready within {plan.ready_timeout:g}s: {plan.ready_path} last answered: "
                f"{last}",
                clock() - start,
            )
        time.sleep(min(delay, PROGRESS_EVERY_S / 2))
        delay = min(delay * 1.5, MAX_POLL_S)


def ask(plan: SmokePlan, request: SmokeRequest, label: str) -> SmokeCase:
    protocol = plan.protocol
    spec = RequestSpec(
        request.prompt, plan.model, request.max_tokens, plan.stream and protocol.streams
    )
    url = plan.url.rstrip("/") + protocol.path(plan.model)
    method = getattr(protocol, "method", "POST")
    if spec.stream:
        reply = inference.post_stream(url, protocol.payload(spec), plan.request_timeout)
    else:
        reply = inference.post(url, protocol.payload(spec), plan.request_timeout, method)
    seconds = reply.seconds
    if reply.error:
        return SmokeCase(label, False, f"{protocol.name} {url}: {reply.error}", seconds)
    if reply.status != 200:
        return SmokeCase(
            label,
            False,
            f"{protocol.name} {url}: expected HTTP 200, got {reply.excerpt()}",
            seconds,
        )
    try:
        if spec.stream:
            output = protocol.parse_stream(reply.events)
        else:
            output = protocol.parse(_json(reply.body))
    except BadReply as exc:
        return SmokeCase(label, False, f"{protocol.name}: malformed reply: {exc}", seconds)
    ttft = None
    if spec.stream:
        first = protocol.first_token(reply.events)
        ttft = reply.event_seconds[first] if first is not None else None
    problems = _check(request, output, reply, spec.stream, ttft)
    if problems:
        return SmokeCase(label, False, "; ".join(problems), seconds, output.text)
    return SmokeCase(
        label, True, f"{len(output.text)} characters in {seconds:.2f}s", seconds, output.text
    )


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        excerpt = body[:80].decode("utf-8", "replace")
        raise BadReply(f"the body is not JSON: {excerpt!r}") from None


def _check(
    request: SmokeRequest,
    output: Output,
    reply: inference.Reply,
    streamed: bool,
    ttft: float | None,
) -> list[str]:
    problems = []
    text = output.text
    if not text.strip():
        problems.append("empty output")
    if request.expect_contains is not None and request.expect_contains not in text:
        problems.append(
            f"expected the output to contain {request.expect_contains!r}, got {text[:80]!r}"
        )
    if request.expect_regex is not None and not re.search(request.expect_regex, text):
        problems.append(f"expected the output to match /{request.expect_regex}/, got {text[:80]!r}")
    tokens = output.tokens if output.tokens is not None else len(text.split())
    if text.strip() and tokens < request.min_tokens:
        problems.append(f"{tokens} tokens, expected at least {request.min_tokens}")
    if tokens > request.max_tokens:
        problems.append(f"{tokens} tokens, expected at most {request.max_tokens}")
    if request.max_latency is not None and reply.seconds > request.max_latency:
        problems.append(f"took {reply.seconds:.2f}s, budget {request.max_latency:g}s")
    # ttft: when the first event carrying generated text arrived, not the first event.
    if streamed and request.max_ttft is not None and (ttft is None or ttft > request.max_ttft):
        shown = "no token" if ttft is None else f"{ttft:.2f}s"
        problems.append(f"time to first token {shown}, budget {request.max_ttft:g}s")
    return problems


def run_gate(
    plan: SmokePlan, say: Callable[[str], None], alive: Alive | None = None
) -> SmokeVerdict:
    verdict = SmokeVerdict(plan)
    ready = wait_ready(plan, say, alive=alive)
    verdict.cases.append(ready)
    if not ready.passed:
        return verdict  # fail closed: nothing to ask
    latencies = []
    for number, request in enumerate(plan.requests, 1):
        name = request.name or f"request {number}"
        for attempt in range(1, plan.repeat + 1):
            label = name if plan.repeat == 1 else f"{name} #{attempt}"
            case = ask(plan, request, label)
            say(f"{label}: {'pass' if case.passed else 'FAIL'}: {case.message}")
            verdict.cases.append(case)
            latencies.append(case.seconds)
    if plan.p95 is not None and latencies:
        p95 = percentile(latencies, 95)
        ok = p95 <= plan.p95
        message = f"p95 {p95:.2f}s over {len(latencies)} requests, budget {plan.p95:g}s"
        verdict.cases.append(SmokeCase("latency p95", ok, message, p95))
    return verdict


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
