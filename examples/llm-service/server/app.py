"""An OpenAI-compatible HTTP server for the tiny model, with honest health endpoints.

/health/live answers as soon as the process runs. /health/ready answers 200 only after the
weights are loaded and a one-token self-test produced a token; until then 503. /metrics is the
Prometheus text format: requests, prompt and generated tokens, requests running and refused.

Two settings make the server behave as a worse build would, for trying the gate: ``delay``
(seconds added to every completion, a slower model) and ``max_in_flight`` (completions beyond
that many at once are refused with 503, a server that cannot take its load).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from server.model import ModelError, TrigramModel, detokenize, tokenize


class ModelState:
    """Loads the model in the background; requests read it once it is there."""

    def __init__(self, model_dir: Path, name: str, delay: float = 0.0, max_in_flight: int = 0) -> None:
        self.model_dir = model_dir
        self.name = name
        self.delay = delay
        self.max_in_flight = max_in_flight  # 0: no limit
        self.model: TrigramModel | None = None
        self.error: str | None = None
        self.loaded_at: float | None = None
        self.lock = threading.Lock()
        self.counters = {"requests": 0, "refused": 0, "prompt_tokens": 0, "generated_tokens": 0}
        self.running = 0

    def enter(self) -> bool:
        """Count a completion in; False (and counted as refused) when the server is full."""
        with self.lock:
            if self.max_in_flight and self.running >= self.max_in_flight:
                self.counters["refused"] += 1
                return False
            self.running += 1
            return True

    def leave(self, prompt_tokens: int, generated_tokens: int) -> None:
        with self.lock:
            self.running -= 1
            self.counters["requests"] += 1
            self.counters["prompt_tokens"] += prompt_tokens
            self.counters["generated_tokens"] += generated_tokens

    def exposition(self) -> str:
        with self.lock:
            counters, running = dict(self.counters), self.running
        lines = []
        for name, value in counters.items():
            metric = f"llm_service_{name}_total"
            lines += [f"# TYPE {metric} counter", f"{metric} {value}"]
        lines += ["# TYPE llm_service_requests_running gauge", f"llm_service_requests_running {running}"]
        return "\n".join(lines) + "\n"

    def load(self) -> None:
        try:
            model = TrigramModel.load(self.model_dir)
            if not model.generate("the", 1):
                raise ModelError("self-test produced no token")
        except ModelError as exc:
            self.error = str(exc)
            print(f"llm-service: model not loaded: {exc}", flush=True)
            return
        self.model, self.loaded_at = model, time.time()
        print(f"llm-service: model {self.name} loaded from {self.model_dir}", flush=True)

    def start_loading(self) -> None:
        threading.Thread(target=self.load, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    server_version = "llm-service/1"
    protocol_version = "HTTP/1.1"
    state: ModelState  # set by make_server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -------------------------------------------------------------------------

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._json(status, {"error": {"message": message, "type": kind, "code": status}})

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._error(400, "the request body is not JSON")
            return None
        if not isinstance(body, dict):
            self._error(400, "the request body must be a JSON object")
            return None
        return body

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        state = self.state
        if self.path == "/health/live":
            self._json(200, {"status": "live"})
        elif self.path == "/health/ready":
            if state.model is not None:
                self._json(200, {"status": "ready", "model": state.name})
            else:
                status = "failed" if state.error else "loading"
                self._json(503, {"status": status, "error": state.error})
        elif self.path == "/metrics":
            data = state.exposition().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/v1/models":
            created = int(state.loaded_at or time.time())
            models = [{"id": state.name, "object": "model", "created": created, "owned_by": "llm-service"}]
            self._json(200, {"object": "list", "data": models})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        body = self._body()
        if body is None:
            return
        model = self.state.model
        if model is None:
            self._error(503, "the model is still loading", "service_unavailable")
            return
        chat = self.path.endswith("chat/completions")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                self._error(400, "'messages' must be a non-empty list")
                return
            prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                self._error(400, "'prompt' must be a string")
                return
        try:
            max_tokens = int(body.get("max_tokens", 16))
            temperature = float(body.get("temperature", 1.0))
        except (TypeError, ValueError):
            self._error(400, "'max_tokens' and 'temperature' must be numbers")
            return
        if not 1 <= max_tokens <= 512:
            self._error(400, "'max_tokens' must be between 1 and 512")
            return
        stop = body.get("stop") or []
        stops = [stop] if isinstance(stop, str) else [str(s) for s in stop]
        if not self.state.enter():
            self._error(503, f"more than {self.state.max_in_flight} requests at once", "server_busy")
            return
        tokens: list[str] = []
        try:
            if self.state.delay:
                time.sleep(self.state.delay)
            tokens = model.generate(prompt, max_tokens, temperature, seed=int(body.get("seed", 0)))
        finally:
            self.state.leave(len(tokenize(prompt)), len(tokens))
        text, finish = _apply_stop(tokens, stops, max_tokens)
        usage = {
            "prompt_tokens": len(tokenize(prompt)),
            "completion_tokens": len(tokens),
            "total_tokens": len(tokenize(prompt)) + len(tokens),
        }
        if body.get("stream"):
            self._stream(chat, text, finish)
            return
        ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
            obj = "text_completion"
        self._json(200, {"id": ident, "object": obj, "created": created, "model": self.state.name,
                         "choices": [choice], "usage": usage})  # fmt: skip

    def _stream(self, chat: bool, text: str, finish: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in _chunks(chat, self.state.name, text, finish):
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-stream


def _apply_stop(tokens: list[str], stops: list[str], max_tokens: int) -> tuple[str, str]:
    text = detokenize(tokens)
    for stop in stops:
        if stop and stop in text:
            return text[: text.index(stop)], "stop"
    return text, "length" if len(tokens) >= max_tokens else "stop"


def _chunks(chat: bool, model: str, text: str, finish: str) -> Iterator[dict[str, Any]]:
    ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    obj = "chat.completion.chunk" if chat else "text_completion"
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []
    if chat:
        pieces = ["", *pieces]  # the first chunk carries the role
    for i, piece in enumerate(pieces):
        if chat:
            delta = {"role": "assistant", "content": ""} if i == 0 else {"content": piece}
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
        else:
            choice = {"index": 0, "text": piece, "finish_reason": None}
        yield {"id": ident, "object": obj, "created": created, "model": model, "choices": [choice]}
    last = {"index": 0, "finish_reason": finish, **({"delta": {}} if chat else {"text": ""})}
    yield {"id": ident, "object": obj, "created": created, "model": model, "choices": [last]}


def make_server(host: str, port: int, state: ModelState) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
