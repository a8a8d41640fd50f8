"""Each smoke protocol's request body and reply reading (pipeline_kit.smoke.protocols), as pure
functions: the exact body for a prompt, model and token limit, streaming or not, and the text
read back from replies and stream events. tests/integration/smoke/ checks the same bodies as a
loopback server received them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline_kit.smoke import PROTOCOLS
from pipeline_kit.smoke.protocols import BadReply, HttpProtocol, Output, RequestSpec, json_path

PROMPT = 'say "hi"\n'  # a quote and a newline: the body must escape them


def exact(value: Any) -> str:
    """JSON text with sorted keys: 0 and 0.0, false and 0 come out different."""
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize(
    ("name", "stream", "body"),
    [
        ("openai-chat", False,
         {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 7,
          "temperature": 0, "stream": False}),
        ("openai-chat", True,
         {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 7,
          "temperature": 0, "stream": True}),
        ("openai-completions", False,
         {"model": "m", "prompt": PROMPT, "max_tokens": 7, "temperature": 0, "stream": False}),
        ("openai-completions", True,
         {"model": "m", "prompt": PROMPT, "max_tokens": 7, "temperature": 0, "stream": True}),
        ("truss", False, {"prompt": PROMPT, "max_tokens": 7, "temperature": 0}),
        ("kserve-v2", False,
         {"inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": [PROMPT]}],
          "parameters": {"max_tokens": 7, "temperature": 0}}),
        ("tgi", False, {"inputs": PROMPT, "parameters": {"max_new_tokens": 7, "do_sample": False}}),
        ("cog", False, {"input": {"prompt": PROMPT, "max_new_tokens": 7, "temperature": 0}}),
    ],
)  # fmt: skip
def test_greedy_request_bodies(name: str, stream: bool, body: Any) -> None:
    protocol = PROTOCOLS.get(name, given_as="--protocol")
    assert exact(protocol.payload(RequestSpec(PROMPT, "m", 7, stream))) == exact(body)


def test_http_template_fills_in_json_values() -> None:
    protocol = HttpProtocol(
        route="/run/{model}",
        body_template='{"q": {prompt}, "n": {max_tokens}, "m": {model}, "t": 0}',
    )
    assert protocol.path("m") == "/run/m"
    payload = protocol.payload(RequestSpec(PROMPT, "m", 7))
    assert exact(payload) == exact({"q": PROMPT, "n": 7, "m": "m", "t": 0})


@pytest.mark.parametrize(
    ("name", "events", "text"),
    [
        ("openai-chat",
         ['{"choices": [{"delta": {"role": "assistant"}}]}',
          '{"choices": [{"delta": {"content": "to a"}}]}',
          '{"choices": [{"delta": {"content": " summer"}}]}',
          '{"choices": [{"delta": {}, "finish_reason": "stop"}]}'],
         "to a summer"),
        ("openai-completions",
         ['{"choices": [{"text": "to a"}]}', '{"choices": [{"text": " summer"}]}'],
         "to a summer"),
    ],
)  # fmt: skip
def test_stream_events_join_into_the_text(name: str, events: list[str], text: str) -> None:
    assert PROTOCOLS.get(name, given_as="--protocol").parse_stream(events) == Output(text)


@pytest.mark.parametrize(
    ("name", "body", "output"),
    [
        ("openai-chat",
         {"choices": [{"message": {"content": "hi"}}], "usage": {"completion_tokens": 4}},
         Output("hi", 4)),
        ("openai-completions", {"choices": [{"text": "hi"}]}, Output("hi")),
        ("tgi", [{"generated_text": "hi", "details": {"generated_tokens": 2}}], Output("hi", 2)),
        ("truss", "hi", Output("hi")),
        ("truss", {"generated_text": "hi"}, Output("hi")),
        ("kserve-v2", {"outputs": [{"data": ["hi"]}]}, Output("hi")),
        ("cog", {"status": "succeeded", "output": ["h", "i"]}, Output("hi")),
    ],
)  # fmt: skip
def test_replies_read_back(name: str, body: Any, output: Output) -> None:
    assert PROTOCOLS.get(name, given_as="--protocol").parse(body) == output


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("kserve-v2", {"outputs": []}, "'outputs' is not a non-empty list"),
        ("cog", {"status": "failed", "error": "OOM"}, "prediction status is 'failed': OOM"),
        ("tgi", {"generated_text": None}, "generated_text is NoneType, not text"),
        ("truss", {"result": 1}, "no text in the reply"),
    ],
)
def test_bad_replies_say_what_is_wrong(name: str, body: Any, message: str) -> None:
    with pytest.raises(BadReply) as raised:
        PROTOCOLS.get(name, given_as="--protocol").parse(body)
    assert str(raised.value).startswith(message)


def test_json_path_subset() -> None:
    body = {"a": {"b-c": [{"d": "x"}, {"d": "y"}]}}
    assert json_path(body, "$.a['b-c'][1].d") == "y"
    assert json_path(body, "$") == body
    with pytest.raises(BadReply, match=r"no \['a'\]\['b-c'\]\[2\] in the reply"):
        json_path(body, "$.a['b-c'][2]")


ROLE = '{"choices": [{"delta": {"role": "assistant"}, "finish_reason": null}]}'


@pytest.mark.parametrize(
    ("name", "events", "first"),
    [
        ("openai-chat", [ROLE, '{"choices": [{"delta": {"content": "to"}}]}'], 1),
        ("openai-chat", [ROLE, '{"choices": [{"delta": {"content": ""}}]}',
                         '{"choices": [{"delta": {"content": "to"}}]}'], 2),
        ("openai-chat", [ROLE, '{"choices": [{"delta": {"reasoning_content": "hm"}}]}'], 1),
        ("openai-chat", ['{"token": {"id": 5, "text": "to", "special": false}}'], 0),
        ("openai-chat", [ROLE, '{"choices": [{"delta": {}, "finish_reason": "stop"}]}'], None),
        ("openai-completions", ['{"choices": [{"text": ""}]}', '{"choices": [{"text": "a"}]}'], 1),
        ("openai-completions", ["not json", '{"choices": [{"text": "a"}]}'], 1),
        ("truss", ['{"choices": [{"text": "a"}]}'], None),
    ],
    ids=["role-first", "empty-content", "reasoning", "tgi-token", "no-text", "empty-text",
         "not-json", "does-not-stream"],
)  # fmt: skip
def test_first_token_is_the_first_event_with_generated_text(
    name: str, events: list[str], first: int | None
) -> None:
    assert PROTOCOLS.get(name, given_as="--protocol").first_token(events) == first
