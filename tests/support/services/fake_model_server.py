"""Small misbehaving model servers for the gate's failure paths (the real one behaves).

Each route maps a path to a function of the request body that returns either a whole answer
(status, body bytes, content type) or a ``Stream``: pieces written and flushed one at a time,
the connection closed after the last one. A route may block on an Event to play a hanging
server, or hold an answer with ``stub.hold(seconds)``: held time counts from the moment the
server read the request, so a client, whose clock started before it sent, sees at least that
much however loaded the machine is. ``stop()`` releases every held or waiting route.

``run_smoke`` runs the ``pipeline-kit smoke`` command against such a server as a separate
process and reads back its exit code, JSON verdict and JUnit file.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from xml.etree import ElementTree as ET

from tests.support.gitrepo import cli
from tests.support.services import QuietHandler

Answer = tuple[int, bytes, str]


@dataclass
class Stream:
    """An answer sent piece by piece: each piece is written and flushed before the next one is
    asked for, and the end of the pieces ends the body (the connection closes)."""

    pieces: Iterator[bytes]
    status: int = 200
    kind: str = "text/event-stream"


Route = Callable[[Any], Answer | Stream]


def json_answer(status: int, body: Any) -> Answer:
    return status, json.dumps(body).encode(), "application/json"


def ready_route(_: Any) -> Answer:
    return json_answer(200, {"status": "ready"})


def chat_route(text: str, completion_tokens: int | None = None) -> Route:
    """An OpenAI chat completion answering ``text``; with ``completion_tokens``, a ``usage``
    block reporting that many generated tokens (the gate counts those, not the words)."""
    body: dict[str, Any] = {"choices": [{"message": {"role": "assistant", "content": text}}]}
    if completion_tokens is not None:
        body["usage"] = {"completion_tokens": completion_tokens}
    return lambda _: json_answer(200, body)


def sse(data: Any) -> bytes:
    """One Server-Sent Event carrying ``data`` as JSON (or as is, for ``"[DONE]"``)."""
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


DONE = sse("[DONE]")


def chat_chunk(text: str) -> Any:
    """A streamed OpenAI chat chunk whose delta carries ``text``."""
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def role_chunk() -> Any:
    """The chunk OpenAI-compatible servers (vLLM, SGLang, TGI's /v1) send before the first
    token: the role alone, no content."""
    return {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}


def reasoning_chunk(text: str) -> Any:
    """A streamed chat chunk carrying reasoning (vLLM's ``reasoning_content``), no content."""
    return {"choices": [{"index": 0, "delta": {"reasoning_content": text}}]}


def completion_chunk(text: str) -> Any:
    """A streamed OpenAI completions chunk carrying ``text``."""
    return {"choices": [{"index": 0, "text": text}]}


def event_stream(events: Sequence[bytes], before: Callable[[int], object] | None = None) -> Stream:
    """``events`` sent one by one; ``before(i)`` runs before event ``i`` goes out, so a test can
    hold any event back (on an Event, or with ``stub.hold``)."""

    def pieces() -> Iterator[bytes]:
        for number, event in enumerate(events):
            if before is not None:
                before(number)
            yield event

    return Stream(pieces())


class ModelServerStub:
    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)  # a test may add or replace routes while it runs
        self.hits: dict[str, int] = {}
        self.received: dict[str, list[Any]] = {}  # path: the JSON bodies, in order
        self.closing = threading.Event()  # set by stop(): held routes give up
        self.hung_up = threading.Event()  # a client closed a stream before its end
        stub = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                raw = self.read_body()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                stub.hits[self.path] = stub.hits.get(self.path, 0) + 1
                stub.received.setdefault(self.path, []).append(body)
                route = stub.routes.get(self.path)
                answer = route(body) if route else json_answer(404, {"error": "no"})
                try:
                    if isinstance(answer, Stream):
                        self._stream(answer)
                    else:
                        self._whole(*answer)
                except (BrokenPipeError, ConnectionResetError):
                    stub.hung_up.set()
                    self.close_connection = True

            def _whole(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, answer: Stream) -> None:
                self.close_connection = True  # the body ends when the connection does
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.kind)
                self.send_header("Connection", "close")
                self.end_headers()
                for piece in answer.pieces:
                    self.wfile.write(piece)
                    self.wfile.flush()

            do_GET = do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def hold(self, seconds: float) -> None:
        """Block the calling route for ``seconds`` on the monotonic clock (never less), or
        until ``stop()``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.closing.wait(left):
            pass

    def late(self, route: Route, seconds: float, hits: Container[int] | None = None) -> Route:
        """``route``, answering only after ``hold(seconds)``; with ``hits``, only the requests
        of those numbers (1 is the first to this route) are held."""
        numbers = itertools.count(1)

        def held(body: Any) -> Answer | Stream:
            if hits is None or next(numbers) in hits:
                self.hold(seconds)
            return route(body)

        return held

    def trickle(self, event: bytes, every: float) -> Stream:
        """``event`` again and again, ``every`` seconds apart, never ending by itself: it stops
        when the client hangs up (``hung_up`` is set then) or the stub stops."""

        def pieces() -> Iterator[bytes]:
            while not self.closing.wait(every):
                yield event

        return Stream(pieces())

    def stop(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def running(routes: Mapping[str, Route]) -> Iterator[ModelServerStub]:
    """A stub serving ``routes`` for the ``with`` block, stopped (and its routes released)
    after it."""
    stub = ModelServerStub(routes)
    try:
        yield stub
    finally:
        stub.stop()


class SmokeRun(NamedTuple):
    code: int  # the command's exit code: 0 passed, 1 failed
    verdict: dict[str, Any]  # the --format json verdict
    suite: ET.Element  # the --junit file's <testsuite>

    @property
    def failures(self) -> list[str]:
        """The JUnit failure messages, in the order of the cases."""
        return [f.get("message", "") for f in self.suite.iter("failure")]

    @property
    def cases(self) -> dict[str, dict[str, Any]]:
        """The verdict's cases by name."""
        return {case["name"]: case for case in self.verdict["cases"]}


def run_smoke(
    cwd: Path, *args: str, timeout: float = 120, env: Mapping[str, str] | None = None
) -> SmokeRun:
    """``pipeline-kit smoke --format json --junit FILE ARGS`` in ``cwd``; it must end with a
    verdict (exit code 0 or 1), not an error, within ``timeout`` seconds."""
    junit = cwd / "junit.xml"
    result = cli(
        "smoke", "--format", "json", "--junit", str(junit), *args, cwd=cwd, timeout=timeout,
        env=env,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    return SmokeRun(result.returncode, json.loads(result.stdout), ET.parse(junit).getroot())
