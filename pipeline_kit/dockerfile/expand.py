"""Dockerfile variable substitution (``$VAR``, ``${VAR}``, ``${VAR:-word}`` ...).

The kit must see the same image references and COPY sources the builder sees, so
ARG and ENV values are expanded with the Dockerfile's own rules, not the shell's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = (":-", ":+", "-", "+")


def expand(text: str, scope: Mapping[str, str | None]) -> str:
    """Expand variables in ``text``; unknown or unset variables become empty, as in Docker."""
    if "$" not in text:
        return text
    return "".join(_expand(text, scope, names=None))


def uses_variables(text: str) -> set[str]:
    """The variable names ``text`` refers to (for reasons and key material)."""
    names: set[str] = set()
    _expand(text, {}, names=names)
    return names


def _expand(text: str, scope: Mapping[str, str | None], names: set[str] | None) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text.startswith("$", i + 1):
            out.append("$")
            i += 2
        elif ch == "$" and text.startswith("{", i + 1):
            end = _closing_brace(text, i + 2)
            match = _NAME.match(text, i + 2)
            if end < 0 or match is None:
                out.append(text[i:])
                break
            name = match.group()
            rest = text[match.end() : end]
            out.append(_apply(name, rest, scope, names))
            i = end + 1
        elif ch == "$" and (match := _NAME.match(text, i + 1)):
            if names is not None:
                names.add(match.group())
            out.append(scope.get(match.group()) or "")
            i = match.end()
        else:
            out.append(ch)
            i += 1
    return out


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for pos in range(start, len(text)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return pos
    return -1


def _apply(name: str, rest: str, scope: Mapping[str, str | None], names: set[str] | None) -> str:
    if names is not None:
        names.add(name)
    value = scope.get(name)
    op = next((op for op in _OPS if rest.startswith(op)), None)
    if op is None:
        return value or ""
    word = "".join(_expand(rest[len(op) :], scope, names))
    if op == ":-":
        return value if value else word
    if op == "-":
        return value if value is not None else word
    if op == ":+":
        return word if value else ""
    return word if value is not None else ""
