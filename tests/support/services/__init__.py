"""Real servers the tests run on loopback: a registry, a token endpoint, a fault proxy, an HTTP(S)
origin and a forward proxy, buildkitd, the Kaniko sandbox, a deploy tool and a kubectl stand-in."""

from __future__ import annotations

import subprocess
from http.server import BaseHTTPRequestHandler
from typing import Any


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Ask ``process`` to end, and kill it when it has not within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler for the tests' servers: HTTP/1.1 (kept-alive connections, as clients
    meet them), no access log on stderr, and the request body read whole."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""
