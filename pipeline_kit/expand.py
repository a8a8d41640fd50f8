"""Dockerfile variable substitution (``$VAR``, ``${VAR}``, ``${VAR:-word}`` ...).

The kit must see the same image references and COPY sources the builder sees, so
ARG and ENV values are expanded with the Dockerfile's own rules, not the shell's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_VAR = re.compile(
    r"""
    \\(?P<escaped>\$)                                   # \$ stays a literal dollar
    | \$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)                 # $NAME
    | \$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)
          (?:(?P<op>:-|:\+|-|\+)(?P<word>[^}]*))?\}      # ${NAME}, ${NAME:-word} ...
    """,
    re.VERBOSE,
)


def expand(text: str, scope: Mapping[str, str | None]) -> str:
    """Expand variables in ``text``; unknown or unset variables become empty, as in Docker."""
    if "$" not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("bare") or match.group("name")
        value = scope.get(name)
        op = match.group("op")
        if op is None:
            return value or ""
        word = expand(match.group("word"), scope)
        if op == ":-":
            return value if value else word
        if op == "-":
            return value if value is not None else word
        if op == ":+":
            return word if value else ""
        return word if value is not None else ""  # "+"

    return _VAR.sub(substitute, text)


def uses_variables(text: str) -> set[str]:
    """The variable names ``text`` refers to (for reasons and key material)."""
    names: set[str] = set()
    for match in _VAR.finditer(text):
        name = match.group("bare") or match.group("name")
        if name:
            names.add(name)
            if match.group("word"):
                names |= uses_variables(match.group("word"))
    return names
