"""The documentation as the tests read it: README.md, CONTRIBUTING.md and docs/*.md.

Tests that check that the docs say what the code does read them through ``doc`` (by path from
the repository root), so moving a section means changing one name in one test.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import REPO

DOCS = REPO / "docs"
_FENCE = re.compile(r"^(`{3,}|~{3,})")


def doc(name: str) -> str:
    """The text of ``name``, a path from the repository root: ``README.md``, ``docs/lint.md``."""
    return (REPO / name).read_text(encoding="utf-8")


def doc_files() -> list[Path]:
    """Every page of the documentation: the README, CONTRIBUTING.md and docs/*.md."""
    return [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]


def between(text: str, marker: str) -> str:
    """What lies between ``<!-- marker -->`` and ``<!-- /marker -->`` in ``text``."""
    name = re.escape(marker)
    match = re.search(f"<!-- {name} -->\n(.*?)<!-- /{name} -->", text, re.S)
    assert match, f"no <!-- {marker} --> block"
    return match.group(1)


def fenced(text: str, starts_with: str, lang: str = "yaml") -> str:
    """The body of the first fenced ``lang`` block whose body starts with ``starts_with``."""
    opening = f"```{lang}\n{starts_with}"
    start = text.index(opening) + len(f"```{lang}\n")
    return text[start : text.index("```", start)]


def section(text: str, heading: str) -> str:
    """The section under the heading ``heading`` (its text without the ``#``s), up to the next
    heading of the same or a higher level."""
    lines = text.splitlines(keepends=True)
    found = _headings(text)
    for index, (level, title) in found:
        if title == heading:
            end = next((i for i, (lvl, _) in found if i > index and lvl <= level), len(lines))
            return "".join(lines[index + 1 : end])
    raise AssertionError(f"no heading {heading!r}")


def headings(text: str) -> list[str]:
    """The titles of the Markdown headings of ``text``, outside code blocks."""
    return [title for _, (_, title) in _headings(text)]


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def outside_code(text: str) -> str:
    """``text`` with its fenced code blocks blanked out (line count kept)."""
    out, fence = [], None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * 3
            out.append("")
        elif fence is not None:
            if line.startswith(fence) and not line.strip(fence[0]).strip():
                fence = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def _headings(text: str) -> list[tuple[int, tuple[int, str]]]:
    """(line index, (level, title)) of each heading outside code blocks."""
    found = []
    for index, line in enumerate(outside_code(text).splitlines()):
        match = re.match(r"^(#{1,6}) +(.*?)(?: +#+)? *$", line)
        if match:
            found.append((index, (len(match.group(1)), match.group(2).strip())))
    return found
