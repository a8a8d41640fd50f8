"""The smoke gate: wait until the model can answer, then ask it and check every answer.

Readiness: connection refused and 503 mean "still loading"; the gate polls with capped backoff
and reports progress at least every 10 s, until the budget runs out. Then each request is sent
``repeat`` times (temperature 0) and checked: status, the protocol's reply shape, non-empty
output, contains/regex, token bounds, latency per request, p95, time to first token.

Load (``smoke.load``), when the config asks for it: the requests again, cycled, ``concurrency``
at a time until ``requests`` have been sent or ``duration`` has passed (no request starts
after it), each checked as above but for its own latency budgets, then judged as a whole:
error rate, tokens per second, latency p95 and time-to-first-token p95 under that load.

Server metrics (``smoke.metrics``): the server's Prometheus exposition, read once it is ready
and again at the end; what the requests added and where the gauges ended are reported, and
limits on any metric checked (``metrics.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pipeline_kit.adapters import inference
from pipeline_kit.smoke import metrics
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
class LoadPlan:
    concurrency: int  # requests in flight at once
    requests: int  # sent in all, at most
    duration: float = 300.0  # seconds: no request starts later than this after the first
    max_error_rate: float = 0.0  # share of requests that may fail (0 to 1)
    min_tokens_per_second: float | None = None  # generated tokens over the load's wall time
    p95: float | None = None  # seconds, latency under load
    max_ttft_p95: float | None = None  # seconds, when streaming


@dataclass(frozen=True)
class MetricsPlan:
    path: str = "/metrics"
    max: tuple[tuple[str, float], ...] = ()  # metric name, the most it may reach


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
    load: LoadPlan | None = None
    metrics: MetricsPlan | None = None


@dataclass(frozen=True)
class SmokeCase:
    name: str
    passed: bool
    message: str
    seconds: float
    output: str = ""
    tokens: int | None = None  # generated, when the answer was read
    ttft: float | None = None  # seconds to the first generated text, when streamed
    baseline: str | None = None  # the baseline's output, for a request compared with it


@dataclass(frozen=True)
class LoadFigures:
    """What a load run measured, whatever its limits: what a baseline keeps of it."""

    sent: int
    failed: int
    seconds: float  # wall time
    tokens_per_second: float
    p95: float | None  # latency, seconds
    ttft_p95: float | None  # when streamed


@dataclass
class SmokeVerdict:
    plan: SmokePlan
    cases: list[SmokeCase] = field(default_factory=list)
    # Each request's answers, in the plan's order (repeats included): what a baseline keeps.
    answers: list[tuple[SmokeRequest, SmokeCase]] = field(default_factory=list)
    load: LoadFigures | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # figure -> value, when read

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
    tokens = _tokens(output)
    if problems:
        return SmokeCase(label, False, "; ".join(problems), seconds, output.text, tokens, ttft)
    message = f"{len(output.text)} characters in {seconds:.2f}s"
    return SmokeCase(label, True, message, seconds, output.text, tokens, ttft)


def _tokens(output: Output) -> int:
    """The generated tokens the server reported, else the words of the text."""
    return output.tokens if output.tokens is not None else len(output.text.split())


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
    tokens = _tokens(output)
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
    before = _scrape(plan, plan.metrics) if plan.metrics is not None else None
    latencies = []
    for number, request in enumerate(plan.requests, 1):
        name = request.name or f"request {number}"
        for attempt in range(1, plan.repeat + 1):
            label = name if plan.repeat == 1 else f"{name} #{attempt}"
            case = ask(plan, request, label)
            say(f"{label}: {'pass' if case.passed else 'FAIL'}: {case.message}")
            verdict.cases.append(case)
            verdict.answers.append((request, case))
            latencies.append(case.seconds)
    if plan.p95 is not None and latencies:
        p95 = percentile(latencies, 95)
        ok = p95 <= plan.p95
        message = f"p95 {p95:.2f}s over {len(latencies)} requests, budget {plan.p95:g}s"
        verdict.cases.append(SmokeCase("latency p95", ok, message, p95))
    if plan.load is not None:
        cases, verdict.load = run_load(plan, plan.load, say)
        verdict.cases += cases
    if plan.metrics is not None and before is not None:
        after = _scrape(plan, plan.metrics)
        if not isinstance(before, str) and not isinstance(after, str):
            verdict.metrics = metrics.figures(before, after)
        case = _judge_metrics(plan, plan.metrics, before, after)
        say(f"{case.name}: {'pass' if case.passed else 'FAIL'}: {case.message}")
        verdict.cases.append(case)
    return verdict


def _scrape(plan: SmokePlan, wanted: MetricsPlan) -> metrics.Exposition | str:
    """The server's exposition, or why there is none."""
    url = plan.url.rstrip("/") + wanted.path
    reply = inference.get(url, timeout=plan.request_timeout)
    if reply.status != 200:
        return f"GET {wanted.path}: {reply.excerpt()}"
    try:
        return metrics.parse(reply.body.decode("utf-8", "replace"))
    except metrics.MetricsError as exc:
        return f"GET {wanted.path}: not a Prometheus exposition: {exc}"


def _judge_metrics(
    plan: SmokePlan,
    wanted: MetricsPlan,
    before: metrics.Exposition | str,
    after: metrics.Exposition | str,
) -> SmokeCase:
    name = "server metrics"
    for scrape in (before, after):
        if isinstance(scrape, str):
            return SmokeCase(name, False, scrape, 0.0)
    assert not isinstance(before, str) and not isinstance(after, str)
    shown = metrics.summary(before, after)
    problems = []
    for metric, most in wanted.max:
        value = metrics.figure(before, after, metric)
        if value is None:
            problems.append(f"{metric} is not in {wanted.path}")
        elif value > most:
            what = "rose by" if after.is_counter(metric) else "is"
            problems.append(f"{metric} {what} {value:g}, at most {most:g}")
    message = "; ".join(problems + shown) or f"{wanted.path} holds none of the usual figures"
    return SmokeCase(name, not problems, message, 0.0)


def run_load(
    plan: SmokePlan, load: LoadPlan, say: Callable[[str], None], clock: Clock = time.monotonic
) -> tuple[list[SmokeCase], LoadFigures]:
    """The requests again, ``load.concurrency`` at a time, judged as a whole."""
    # Under load a request is judged by its answer; latency is judged over all of them.
    requests = [dataclasses.replace(r, max_latency=None, max_ttft=None) for r in plan.requests]
    say(
        f"load: {load.requests} requests, {load.concurrency} at a time, for at most "
        f"{load.duration:g}s"
    )
    start = clock()
    stop_at = start + load.duration
    lock = threading.Lock()
    started = 0
    cases: list[SmokeCase] = []

    def worker() -> None:
        nonlocal started
        while True:
            with lock:
                if started >= load.requests or clock() >= stop_at:
                    return
                number = started
                started += 1
            request = requests[number % len(requests)]
            case = ask(plan, request, f"load {number + 1}")
            with lock:
                cases.append(case)

    with ThreadPoolExecutor(max_workers=load.concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(load.concurrency)]:
            future.result()
    wall = max(clock() - start, 1e-9)
    return _judge_load(plan, load, cases, wall, say)


def _judge_load(
    plan: SmokePlan,
    load: LoadPlan,
    cases: list[SmokeCase],
    wall: float,
    say: Callable[[str], None],
) -> tuple[list[SmokeCase], LoadFigures]:
    sent = len(cases)
    failed = [case for case in cases if not case.passed]
    tokens = sum(case.tokens or 0 for case in cases if case.passed)
    rate = tokens / wall
    latencies = [case.seconds for case in cases]
    cut = f" (stopped at {load.duration:g}s)" if sent < load.requests else ""
    summary = (
        f"{sent} requests{cut} in {wall:.2f}s, {load.concurrency} at a time: "
        f"{sent / wall:.1f} requests/s, {rate:.1f} tokens/s, {len(failed)} failed"
    )
    if latencies:
        summary += (
            f", latency p50 {percentile(latencies, 50):.2f}s p95 {percentile(latencies, 95):.2f}s"
        )
    say(f"load: {summary}")
    error_rate = len(failed) / sent if sent else 1.0
    message = f"{len(failed)} of {sent} failed ({error_rate:.1%}), limit {load.max_error_rate:.1%}"
    if failed:
        message += f"; first: {failed[0].name}: {failed[0].message}"
    judged = [SmokeCase("load: errors", sent > 0 and error_rate <= load.max_error_rate,
                        message if sent else "no request was sent", wall)]  # fmt: skip
    if load.min_tokens_per_second is not None:
        ok = rate >= load.min_tokens_per_second
        message = f"{rate:.1f} tokens/s, at least {load.min_tokens_per_second:g} expected"
        judged.append(SmokeCase("load: tokens per second", ok, f"{message}; {summary}", wall))
    if load.p95 is not None and latencies:
        p95 = percentile(latencies, 95)
        message = f"p95 {p95:.2f}s over {sent} requests under load, budget {load.p95:g}s"
        judged.append(SmokeCase("load: latency p95", p95 <= load.p95, message, p95))
    if load.max_ttft_p95 is not None and plan.stream:
        firsts = [case.ttft for case in cases if case.ttft is not None]
        if firsts:
            p95 = percentile(firsts, 95)
            ok = p95 <= load.max_ttft_p95 and len(firsts) == sent
            message = f"time to first token p95 {p95:.2f}s, budget {load.max_ttft_p95:g}s"
            if len(firsts) < sent:
                message += f"; {sent - len(firsts)} of {sent} gave no token"
        else:
            ok, p95, message = False, 0.0, "no request gave a token"
        judged.append(SmokeCase("load: time to first token p95", ok, message, p95))
    firsts = [case.ttft for case in cases if case.ttft is not None]
    figures = LoadFigures(
        sent=sent,
        failed=len(failed),
        seconds=wall,
        tokens_per_second=rate,
        p95=percentile(latencies, 95) if latencies else None,
        ttft_p95=percentile(firsts, 95) if plan.stream and firsts else None,
    )
    return judged, figures


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
