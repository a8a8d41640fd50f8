"""Small misbehaving model servers for the gate's failure paths (the real one behaves).

Each route maps a path to a function of the request body that returns (status, body bytes,
content type). A route may block on an Event to play a hanging server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from tests.support.services import QuietHandler

Answer = tuple[int, bytes, str]
Route = Callable[[Any], Answer]


def json_answer(status: int, body: Any) -> Answer:
    return status, json.dumps(body).encode(), "application/json"


class ModelServerStub:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.hits: dict[str, int] = {}
        stub = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                raw = self.read_body()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                stub.hits[self.path] = stub.hits.get(self.path, 0) + 1
                route = stub.routes.get(self.path)
                status, data, kind = route(body) if route else json_answer(404, {"error": "no"})
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
