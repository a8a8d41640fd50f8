"""Round-trip YAML edits that keep a file as its author wrote it: comments, order, quoting,
indentation. Only what the kit adds is new; everything else is written back as it was."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

from pipeline_kit.errors import InputError


def edit(text: str, display: str, change: Callable[[Any], bool]) -> str | None:
    """``text`` after ``change`` edited its top-level mapping in place, or None when ``change``
    says nothing needed changing (then the file is not rewritten at all)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a line the author kept on one
    try:
        document = yaml.load(text) if text.strip() else None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark else display
        raise InputError(
            f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc}).",
            hint="Fix the file, or add the kit's lines by hand; nothing was changed.",
        ) from None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise InputError(
            f"{display}: the top level is not a mapping of keys.",
            hint="Add the kit's lines by hand; nothing was changed.",
        )
    if not change(document):
        return None
    mapping, offset = guess_indent(text)
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    out = StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, offset of a sequence's dash under its key) as the file uses them;
    GitLab's and GitHub's examples use (2, 2): ``key:`` then ``  - item``."""
    mapping: int | None = None
    offset: int | None = None
    previous: tuple[int, bool] | None = None  # (indent, ends with a colon) of the last line
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if previous is not None and previous[1]:
            step = indent - previous[0]
            if stripped.startswith("- "):
                if offset is None and step >= 0:
                    offset = step
            elif mapping is None and step > 0:
                mapping = step
        if mapping is not None and offset is not None:
            break
        previous = (indent, stripped.endswith(":"))
    return mapping or 2, 2 if offset is None else offset


def separate_top_level_key(text: str, key: str) -> str:
    """A blank line between ``key``'s block and the next top-level key, as files written by
    hand have (the dump puts none after a block it added)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{key}:")), None)
    if start is None:
        return text
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.strip() and not line[0].isspace() and not line.startswith("#"):
            if lines[i - 1].strip():
                lines.insert(i, "\n")
            break
    return "".join(lines)
