"""HTTP to a model server: readiness probes, JSON requests, Server-Sent Event streams.

Every call returns what happened (status, body, timings, or the transport error) instead of
raising: a server that refuses, hangs or answers garbage is a verdict, not a crash.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline_kit.adapters.http import TimedOut, TransportError

if TYPE_CHECKING:
    from pipeline_kit.adapters.http import Transport

CONNECT_TIMEOUT = 5.0
MAX_CONCURRENCY = 64  # the gate's load, at most: connections kept per server
JSON = {"Content-Type": "application/json"}


@functools.cache
def _http() -> Transport:
    """One session for the gate's calls: readiness polls reuse their connection."""
    from pipeline_kit.adapters.http import Transport

    return Transport(
        user_agent="pipeline-kit smoke", timeout=(CONNECT_TIMEOUT, 60.0), pool=MAX_CONCURRENCY
    )


def _timeouts(timeout: float) -> tuple[float, float]:
    return min(CONNECT_TIMEOUT, timeout), timeout


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no HTTP answer (see error)
    body: bytes = b""
    seconds: float = 0.0
    error: str | None = None
    events: list[str] = field(default_factory=list)  # streaming: the data payloads
    event_seconds: list[float] = field(default_factory=list)  # streaming: when each arrived

    def excerpt(self, limit: int = 300) -> str:
        if self.error:
            return self.error
        text = self.body.decode("utf-8", "replace").strip().replace("\n", " ")
        return f"HTTP {self.status}: {text[:limit]}" if text else f"HTTP {self.status}"


def get(url: str, timeout: float) -> Reply:
    start = time.monotonic()
    try:
        answer = _http().request("GET", url, timeout=_timeouts(timeout), deadline=start + timeout)
    except TimedOut:
        return Reply(None, seconds=timeout, error=f"timed out after {timeout:g}s")
    except TransportError:
        return Reply(None, seconds=time.monotonic() - start, error="connection refused")
    return Reply(answer.status, answer.body, time.monotonic() - start)


def post(url: str, payload: Any, timeout: float, method: str = "POST") -> Reply:
    start = time.monotonic()
    try:
        answer = _http().request(
            method, url, headers=JSON, body=json.dumps(payload).encode(),
            timeout=_timeouts(timeout), deadline=start + timeout,
        )  # fmt: skip
    except TimedOut:
        return Reply(None, seconds=timeout, error=f"timed out after {timeout:g}s")
    except TransportError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else "connection failed"
        return Reply(None, seconds=time.monotonic() - start, error=reason)
    return Reply(answer.status, answer.body, time.monotonic() - start)


def post_stream(url: str, payload: Any, timeout: float) -> Reply:
    """POST and read an SSE stream until ``[DONE]``, the end, or ``timeout`` in total: the
    request ends by then however slowly the server sends."""
    start = time.monotonic()
    events: list[str] = []
    times: list[float] = []
    body = json.dumps(payload).encode()
    try:
        with _http().stream(
            "POST", url, headers=JSON, body=body, timeout=_timeouts(timeout),
            deadline=start + timeout,
        ) as answer:  # fmt: skip
            if answer.status != 200:
                return Reply(answer.status, answer.read(), time.monotonic() - start)
            for line in answer.lines():
                if time.monotonic() - start > timeout:
                    return _timed_out(timeout, events, times)
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if not text.startswith("data:"):
                    continue
                data = text[5:].strip()
                if data == "[DONE]":
                    break
                events.append(data)
                times.append(time.monotonic() - start)
    except TimedOut:
        return _timed_out(timeout, events, times)
    except TransportError:
        return Reply(None, seconds=time.monotonic() - start, error="connection failed")
    return Reply(200, seconds=time.monotonic() - start, events=events, event_seconds=times)


def _timed_out(timeout: float, events: list[str], times: list[float]) -> Reply:
    """The stream did not end in time: "stream timed out" once events had come, else the
    request as a whole "timed out"."""
    if events:
        return Reply(200, seconds=timeout, error=f"stream timed out after {timeout:g}s",
                     events=events, event_seconds=times)  # fmt: skip
    return Reply(None, seconds=timeout, error=f"timed out after {timeout:g}s")
