"""One Dockerfile word as the builder reads it: quotes removed, escapes applied, variables expanded.

ENV, LABEL, WORKDIR, USER, EXPOSE, STOPSIGNAL and the COPY/ADD arguments go through the
builder's shell-like lexer (moby/buildkit ``shell.Lex.ProcessWord``): single quotes keep
everything literal, double quotes keep spaces and allow ``\\"``, ``\\\\`` and ``\\$``,
a backslash outside quotes escapes the next character, and ``$VAR``/``${VAR...}`` expand
(outside single quotes) with ``expand``'s rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pipeline_kit.dockerfile.expand import expand

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def process_word(text: str, scope: Mapping[str, str | None]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            end = text.find("'", i + 1)
            end = n if end < 0 else end
            out.append(text[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$':
                    out.append(text[i + 1])
                    i += 2
                elif text[i] == "$":
                    value, i = _variable(text, i, scope)
                    out.append(value)
                else:
                    out.append(text[i])
                    i += 1
            i += 1
        elif ch == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
        elif ch == "$":
            value, i = _variable(text, i, scope)
            out.append(value)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _variable(text: str, start: int, scope: Mapping[str, str | None]) -> tuple[str, int]:
    """Expand the variable reference at ``text[start] == "$"``; returns (value, next index)."""
    if text.startswith("{", start + 1):
        depth, pos = 1, start + 2
        while pos < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            pos += 1
        if depth:
            return text[start:], len(text)
        return expand(text[start:pos], scope), pos
    match = _NAME.match(text, start + 1)
    if match is None:
        return "$", start + 1
    return scope.get(match.group()) or "", match.end()
