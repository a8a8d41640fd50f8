"""Serve the process and readiness endpoints; readiness waits for the weights to be present."""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODEL_PATH = Path(os.environ.get("MODEL_PATH", "/models"))


def weights_present() -> bool:
    return any(MODEL_PATH.glob("*.safetensors"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/health/live":
            self.reply(200, {"status": "alive"})
        elif self.path == "/health/ready":
            ready = weights_present()
            self.reply(200 if ready else 503, {"ready": ready, "model_path": str(MODEL_PATH)})
        else:
            self.reply(404, {"error": f"no route {self.path}"})

    def reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
