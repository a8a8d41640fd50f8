"""An HTTP(S) origin and a forward proxy on loopback, for the kit's HTTP transport.

``Origin`` answers every request with what it saw (method, path, headers, body, and which
connection it came on: the client's port), serves ``/redirect?to=URL`` as a 302, ``/close``
with ``Connection: close``, and ``/drop`` as if it kept the connection, then closes it
(``closed`` holds the ports of the connections it has closed). With ``tls=True`` it speaks
HTTPS with an openssl-made certificate for 127.0.0.1 (``ca_file`` trusts it). ``Proxy``
forwards plain-HTTP requests given as absolute URLs and tunnels ``CONNECT``, logging the
Proxy-Authorization it got.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.services import QuietHandler


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """(certificate, key) for IP 127.0.0.1 and localhost, made by openssl."""
    cert, key = workdir / "origin.crt", workdir / "origin.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class Origin:
    workdir: Path
    tls: bool = False
    seen: list[dict[str, Any]] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)
    # /together?n=N answers only when N requests are being handled at once (or fails after
    # 10 s): N requests in flight together need N connections, whatever the machine's load.
    barriers: dict[int, threading.Barrier] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def barrier(self, parties: int) -> threading.Barrier:
        with self._lock:
            return self.barriers.setdefault(parties, threading.Barrier(parties))

    def start(self) -> Origin:
        origin = self

        class Handler(QuietHandler):
            def _handle(self) -> None:
                body = self.read_body()
                entry = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode(errors="replace"),
                    # The client's port names its connection (an object id can be reused).
                    "connection": self.client_address[1],
                }
                origin.seen.append(entry)
                parts = urlsplit(self.path)
                if parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(parts.query)["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 200
                if parts.path == "/together":
                    try:
                        origin.barrier(int(parse_qs(parts.query)["n"][0])).wait(timeout=10)
                    except threading.BrokenBarrierError:
                        status = 504  # fewer than n were ever in flight at once
                answer = json.dumps(entry).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                if parts.path == "/close":
                    self.send_header("Connection", "close")
                    self.close_connection = True
                if parts.path == "/drop":
                    self.close_connection = True  # without telling the client
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            def process_request_thread(self, request: Any, client_address: Any) -> None:
                super().process_request_thread(request, client_address)  # handled and closed
                origin.closed.add(client_address[1])

        self.httpd = Server(("127.0.0.1", 0), Handler)
        if self.tls:
            self.ca_file, key = self_signed(self.workdir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Proxy:
    log: list[dict[str, str]] = field(default_factory=list)

    def start(self) -> Proxy:
        proxy = self

        class Handler(QuietHandler):
            def do_CONNECT(self) -> None:
                proxy._note(self)
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                _pipe(self.connection, upstream)
                self.close_connection = True

            def _forward(self) -> None:
                proxy._note(self)
                parts = urlsplit(self.path)
                body = self.read_body()
                upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                head = [f"{self.command} {target} HTTP/1.1"]
                head += [
                    f"{k}: {v}"
                    for k, v in self.headers.items()
                    if k.lower() not in ("proxy-authorization", "connection")
                ]
                head.append("Connection: close")
                upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                answer = b""
                while chunk := upstream.recv(65536):
                    answer += chunk
                upstream.close()
                self.wfile.write(answer)
                self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def _note(self, handler: BaseHTTPRequestHandler) -> None:
        self.log.append(
            {
                "method": handler.command,
                "target": handler.path,
                "authorization": handler.headers.get("Proxy-Authorization", ""),
            }
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _pipe(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until one side closes."""
    sockets = [client, upstream]
    while True:
        readable, _, _ = select.select(sockets, [], [], 30)
        if not readable:
            break
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                upstream.close()
                return
            (upstream if sock is client else client).sendall(data)
    upstream.close()
