"""A loopback HTTP proxy in front of a registry that fails a share of requests on purpose.

Faults (seeded, so a run is repeatable): a 503 answer, a 429 with ``Retry-After: 1``, a
connection reset before the request reaches the registry, or a reset after the registry has
handled it (the answer is lost).
Every request is logged with what happened to it, so tests can check the order of operations.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from tests.support.services import QuietHandler

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Logged:
    method: str
    path: str
    outcome: str  # "ok", "503", "429", "reset-before", "reset-after"
    status: int | None = None


@dataclass
class FaultProxy:
    upstream_port: int
    rate: float = 0.2
    seed: int = 7
    log: list[Logged] = field(default_factory=list)

    def start(self) -> FaultProxy:
        chooser = random.Random(self.seed)
        lock = threading.Lock()
        proxy = self

        class Handler(QuietHandler):
            def _handle(self) -> None:
                body = self.read_body()
                with lock:
                    roll = chooser.random()
                    kind = chooser.choice(["503", "429", "reset-before", "reset-after"])
                fault = kind if roll < proxy.rate else None
                if fault in ("503", "429"):
                    proxy.log.append(Logged(self.command, self.path, fault, int(fault)))
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "reset-before":
                    proxy.log.append(Logged(self.command, self.path, "reset-before"))
                    self._reset()
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                if fault == "reset-after":
                    proxy.log.append(Logged(self.command, self.path, "reset-after", answer.status))
                    self._reset()
                    return
                proxy.log.append(Logged(self.command, self.path, "ok", answer.status))
                self.send_response(answer.status)
                for key, value in answer.getheaders():
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
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def faults(self) -> int:
        return sum(1 for entry in self.log if entry.outcome != "ok")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
