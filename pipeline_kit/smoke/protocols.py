"""Inference protocols the gate speaks, behind one Protocol, in a registry keyed by name.

Each builds a deterministic request (temperature 0) and checks that the reply has the shape
the protocol promises, returning the generated text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol


class BadReply(Exception):
    """The reply does not have the protocol's shape; the message says what was wrong."""


@dataclass(frozen=True)
class Output:
    text: str
    tokens: int | None = None  # completion tokens, when the protocol reports them


@dataclass(frozen=True)
class RequestSpec:
    prompt: str
    model: str
    max_tokens: int
    stream: bool = False


class SmokeProtocol(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def streams(self) -> bool:
        """Whether it can stream (Server-Sent Events)."""

    def path(self, model: str) -> str: ...

    def payload(self, spec: RequestSpec) -> Any: ...

    def parse(self, body: Any) -> Output: ...

    def parse_stream(self, events: list[str]) -> Output: ...

    def first_token(self, events: list[str]) -> int | None:
        """The index of the first event that carries generated text, None if none does."""


def _get(body: Any, *path: str | int) -> Any:
    """``body[path...]`` or BadReply naming the first missing step."""
    here = body
    for step, key in enumerate(path):
        try:
            here = here[key]
        except (KeyError, IndexError, TypeError):
            where = "".join(f"[{k!r}]" for k in path[: step + 1])
            raise BadReply(f"no {where} in the reply") from None
    return here


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadReply(f"{where} is {type(value).__name__}, not text")
    return value


class _NoStream:
    streams = False

    def parse_stream(self, events: list[str]) -> Output:
        raise BadReply(f"{getattr(self, 'name', '?')} does not stream")

    def first_token(self, events: list[str]) -> int | None:
        return None


class _Streams:
    streams = True

    def first_token(self, events: list[str]) -> int | None:
        """OpenAI-compatible servers (vLLM, SGLang, TGI's /v1) send the role alone, or empty
        text, before the first token: those do not count."""
        for number, event in enumerate(events):
            try:
                chunk = json.loads(event)
            except ValueError:
                continue
            if _generated(chunk):
                return number
        return None


class OpenAIChat(_Streams):
    name = "openai-chat"

    def path(self, model: str) -> str:
        return "/v1/chat/completions"

    def payload(self, spec: RequestSpec) -> Any:
        return {
            "model": spec.model,
            "messages": [{"role": "user", "content": spec.prompt}],
            "max_tokens": spec.max_tokens,
            "temperature": 0,
            "stream": spec.stream,
        }

    def parse(self, body: Any) -> Output:
        text = _text(_get(body, "choices", 0, "message", "content"), "choices[0].message.content")
        return Output(text, _usage(body))

    def parse_stream(self, events: list[str]) -> Output:
        parts = []
        for chunk in _chunks(events):
            delta = _get(chunk, "choices", 0, "delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                parts.append(delta["content"])
        return Output("".join(parts))


class OpenAICompletions(_Streams):
    name = "openai-completions"

    def path(self, model: str) -> str:
        return "/v1/completions"

    def payload(self, spec: RequestSpec) -> Any:
        return {
            "model": spec.model,
            "prompt": spec.prompt,
            "max_tokens": spec.max_tokens,
            "temperature": 0,
            "stream": spec.stream,
        }

    def parse(self, body: Any) -> Output:
        return Output(_text(_get(body, "choices", 0, "text"), "choices[0].text"), _usage(body))

    def parse_stream(self, events: list[str]) -> Output:
        return Output("".join(str(_get(c, "choices", 0, "text")) for c in _chunks(events)))


class Truss(_NoStream):
    name = "truss"

    def path(self, model: str) -> str:
        return f"/v1/models/{model}:predict"

    def payload(self, spec: RequestSpec) -> Any:
        return {"prompt": spec.prompt, "max_tokens": spec.max_tokens, "temperature": 0}

    def parse(self, body: Any) -> Output:
        if isinstance(body, str):
            return Output(body)
        for key in ("output", "text", "generated_text", "completion"):
            if isinstance(body, dict) and isinstance(body.get(key), str):
                return Output(body[key])
        raise BadReply("no text in the reply (expected a string, or output/text/generated_text)")


class KServeV2(_NoStream):
    name = "kserve-v2"

    def path(self, model: str) -> str:
        return f"/v2/models/{model}/infer"

    def payload(self, spec: RequestSpec) -> Any:
        return {
            "inputs": [
                {"name": "text_input", "shape": [1], "datatype": "BYTES", "data": [spec.prompt]}
            ],
            "parameters": {"max_tokens": spec.max_tokens, "temperature": 0},
        }

    def parse(self, body: Any) -> Output:
        outputs = _get(body, "outputs")
        if not isinstance(outputs, list) or not outputs:
            raise BadReply("'outputs' is not a non-empty list")
        data = _get(outputs[0], "data")
        if not isinstance(data, list) or not data:
            raise BadReply("outputs[0].data is not a non-empty list")
        return Output(_text(data[0], "outputs[0].data[0]"))


class TGI(_NoStream):
    name = "tgi"

    def path(self, model: str) -> str:
        return "/generate"

    def payload(self, spec: RequestSpec) -> Any:
        return {
            "inputs": spec.prompt,
            "parameters": {"max_new_tokens": spec.max_tokens, "do_sample": False},
        }

    def parse(self, body: Any) -> Output:
        if isinstance(body, list) and body:
            body = body[0]
        text = _text(_get(body, "generated_text"), "generated_text")
        details = body.get("details") if isinstance(body, dict) else None
        tokens = details.get("generated_tokens") if isinstance(details, dict) else None
        return Output(text, tokens if isinstance(tokens, int) else None)


class Cog(_NoStream):
    name = "cog"

    def path(self, model: str) -> str:
        return "/predictions"

    def payload(self, spec: RequestSpec) -> Any:
        return {
            "input": {"prompt": spec.prompt, "max_new_tokens": spec.max_tokens, "temperature": 0}
        }

    def parse(self, body: Any) -> Output:
        status = _get(body, "status")
        if status != "succeeded":
            raise BadReply(
                f"prediction status is {status!r}: {body.get('error') or 'no error given'}"
            )
        output = _get(body, "output")
        if isinstance(output, list):  # Cog streams tokens as a list of strings
            output = "".join(str(piece) for piece in output)
        return Output(_text(output, "output"))


_JSONPATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def json_path(body: Any, path: str) -> Any:
    """A small JSONPath subset: ``$.a.b[0]['c-d']``."""
    if not path.startswith("$"):
        raise BadReply(f"JSONPath {path!r} must start with $")
    steps: list[str | int] = []
    rest = path[1:]
    while rest:
        match = _JSONPATH_STEP.match(rest)
        if match is None:
            raise BadReply(f"JSONPath {path!r}: cannot read {rest!r}")
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name or quoted))
        rest = rest[match.end() :]
    return _get(body, *steps)


@dataclass(frozen=True)
class HttpProtocol(_NoStream):
    """Any JSON API: method, path, a body template with {prompt}, and where the text is."""

    method: str = "POST"
    route: str = "/"
    body_template: str = '{"prompt": {prompt}}'
    output_path: str = "$"
    name: str = "http"

    def path(self, model: str) -> str:
        return self.route.replace("{model}", model)

    def payload(self, spec: RequestSpec) -> Any:
        text = self.body_template.replace("{prompt}", json.dumps(spec.prompt))
        text = text.replace("{model}", json.dumps(spec.model)).replace(
            "{max_tokens}", str(spec.max_tokens)
        )
        return json.loads(text)

    def parse(self, body: Any) -> Output:
        value = json_path(body, self.output_path)
        return Output(value if isinstance(value, str) else json.dumps(value))


def _usage(body: Any) -> int | None:
    usage = body.get("usage") if isinstance(body, dict) else None
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) else None


def _generated(chunk: Any) -> bool:
    """Whether a stream chunk carries generated text: an OpenAI chat delta's ``content`` or
    ``reasoning_content``, a completion's ``text``, or TGI's native ``token.text``."""
    texts: list[Any] = []
    if isinstance(chunk, dict):
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if isinstance(choice, dict):
            delta = choice.get("delta")
            if isinstance(delta, dict):
                texts += [delta.get("content"), delta.get("reasoning_content")]
            texts.append(choice.get("text"))
        token = chunk.get("token")
        if isinstance(token, dict):
            texts.append(token.get("text"))
    return any(isinstance(text, str) and text != "" for text in texts)


def _chunks(events: list[str]) -> list[Any]:
    chunks = []
    for event in events:
        try:
            chunks.append(json.loads(event))
        except ValueError:
            raise BadReply(f"stream event is not JSON: {event[:80]!r}") from None
    if not chunks:
        raise BadReply("the stream carried no events")
    return chunks
