"""A loopback HTTP proxy in front of a registry that fails requests on purpose.

Random faults (seeded, so a run is repeatable) for a share ``rate`` of requests: a 503 answer, a
429 with ``Retry-After: 1``, a connection reset before the request reaches the registry, or a
reset after the registry has handled it (the answer is lost).
Scripted faults (``Rule``) for the requests a test names, the first ``times`` of them: an answer
the proxy gives itself (the registry never sees the request), the registry's answer altered on
its way back (a rewritten manifest, a challenge or header changed or dropped), or the upload
session the request continues cancelled at the registry first (a real ``DELETE`` of it), so the
registry answers as one that lost the session: 404 ``BLOB_UPLOAD_UNKNOWN``.
Every request is logged with what happened to it, so tests can check the order of operations.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import NamedTuple

from tests.support.services import QuietHandler

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # names lower-case when they come from the registry
    body: bytes = b""


@dataclass
class Rule:
    """A scripted fault for requests with ``method`` whose path (with its query) matches the
    regular expression ``path`` (searched): the first ``times`` of them, every one with None.

    Exactly one of: ``answer`` (given by the proxy; the request does not reach the registry),
    ``alter`` (the registry's answer, changed on its way back) or ``cancel_upload`` (the
    upload session the request continues is deleted at the registry, then the request goes on).
    """

    method: str
    path: str
    answer: Answer | None = None
    alter: Callable[[Answer], Answer] | None = None
    cancel_upload: bool = False
    times: int | None = 1
    hits: int = 0

    def __post_init__(self) -> None:
        actions = [self.answer is not None, self.alter is not None, self.cancel_upload]
        if actions.count(True) != 1:
            raise ValueError("a Rule needs exactly one of answer, alter and cancel_upload")

    def claims(self, method: str, path: str) -> bool:
        """Whether this rule takes the request (counted; call under the proxy's lock)."""
        if method != self.method or not re.search(self.path, path):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True


@dataclass
class Logged:
    method: str
    path: str
    # "ok", "503", "429", "reset-before", "reset-after" (random faults);
    # "answered", "altered", "cancelled" (rules); "alter-failed", "cancel-failed" (a rule's
    # premise did not hold: answered 502)
    outcome: str
    status: int | None = None
    connection: int = 0  # the client's port: one per connection the client opened


@dataclass
class FaultProxy:
    upstream_port: int
    rate: float = 0.2
    seed: int = 7
    rules: list[Rule] = field(default_factory=list)
    log: list[Logged] = field(default_factory=list)

    def start(self) -> FaultProxy:
        chooser = random.Random(self.seed)
        lock = threading.Lock()
        proxy = self

        class Handler(QuietHandler):
            def note(self, outcome: str, status: int | None = None) -> None:
                proxy.log.append(
                    Logged(self.command, self.path, outcome, status, self.client_address[1])
                )

            def _handle(self) -> None:
                body = self.read_body()
                with lock:
                    roll = chooser.random()
                    kind = chooser.choice(["503", "429", "reset-before", "reset-after"])
                    rule = next((r for r in proxy.rules if r.claims(self.command, self.path)), None)
                if rule is not None:
                    self._scripted(rule, body)
                    return
                fault = kind if roll < proxy.rate else None
                if fault in ("503", "429"):
                    self.note(fault, int(fault))
                    retry_after = {"Retry-After": "1"} if fault == "429" else {}
                    self._send(Answer(int(fault), retry_after))
                    return
                if fault == "reset-before":
                    self.note("reset-before")
                    self._reset()
                    return
                status, headers, data = self._forward(self.command, self.path, body)
                if fault == "reset-after":
                    self.note("reset-after", status)
                    self._reset()
                    return
                self.note("ok", status)
                self._send_raw(status, headers, data)

            def _scripted(self, rule: Rule, body: bytes) -> None:
                if rule.answer is not None:
                    self.note("answered", rule.answer.status)
                    self._send(rule.answer)
                    return
                if rule.cancel_upload:
                    # The request's URL is the session's (its _state query included).
                    cancelled, _, _ = self._forward("DELETE", self.path, b"")
                    if cancelled != 204:  # the test's premise failed: say so, loudly
                        self.note("cancel-failed", 502)
                        self._send(Answer(502, {}, f"DELETE answered {cancelled}".encode()))
                        return
                status, headers, data = self._forward(self.command, self.path, body)
                if rule.alter is not None:
                    names: dict[str, str] = {}
                    for key, value in headers:
                        names[key.lower()] = (
                            f"{names[key.lower()]}, {value}" if key.lower() in names else value
                        )
                    try:
                        answer = rule.alter(Answer(status, names, data))
                    except Exception as exc:  # a test's check on the answer failed: say so
                        self.note("alter-failed", 502)
                        self._send(Answer(502, {}, f"alter failed: {exc!r}".encode()))
                        return
                    self.note("altered", answer.status)
                    self._send(answer)
                    return
                self.note("cancelled", status)
                self._send_raw(status, headers, data)

            def _forward(
                self, method: str, path: str, body: bytes
            ) -> tuple[int, list[tuple[str, str]], bytes]:
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if method != self.command:  # a request of the proxy's own, without a body
                    headers = {
                        k: v for k, v in headers.items() if not k.lower().startswith("content-")
                    }
                upstream.request(method, path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                return answer.status, answer.getheaders(), data

            def _send(self, answer: Answer) -> None:
                self._send_raw(answer.status, list(answer.headers.items()), answer.body)

            def _send_raw(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends RST, as a crashing load balancer would.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()  # stop() waits one poll at most
        return self

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def faults(self) -> int:
        return sum(1 for entry in self.log if entry.outcome != "ok")

    def seen(self, method: str, pattern: str) -> list[Logged]:
        """The logged requests with ``method`` whose path matches ``pattern`` (searched)."""
        return [e for e in self.log if e.method == method and re.search(pattern, e.path)]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
