"""The documentation's shape: a short README that starts with what the kit is and the two
commands that try it, links that lead somewhere, and the pages that describe the package
(configuration keys, folders, layer order) kept in step with it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.config.loader import schema
from tests.support import REPO
from tests.support.docs import doc, doc_files, headings, outside_code, section, slug
from tests.support.layers import LAYERS

MAX_README_LINES = 300
CONTENTS = "Contents"
SETUP_COMMANDS = ["./scripts/demo", "./scripts/test"]
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCED = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def test_the_readme_is_a_front_page() -> None:
    text = doc("README.md")
    assert len(text.splitlines()) <= MAX_README_LINES
    lines = text.splitlines()
    assert lines[0] == "# pipeline-kit"
    first = next(line for line in lines[1:] if line.strip())
    assert re.match(r"[A-Za-z]", first), f"the README starts with {first!r}, not a paragraph"
    paragraph = text.split("\n\n")[1]
    assert len(paragraph.split()) >= 40 and "\n```" not in paragraph


def test_the_readme_gives_exactly_two_setup_commands_before_its_contents() -> None:
    text = doc("README.md")
    assert CONTENTS in headings(text)
    before = text[: text.index(f"\n## {CONTENTS}\n")]
    blocks = _FENCED.findall(before)
    assert [lang for lang, _ in blocks] == ["sh"] * len(SETUP_COMMANDS)
    assert [body.strip() for _, body in blocks] == SETUP_COMMANDS


def test_the_readme_contents_list_its_sections() -> None:
    text = doc("README.md")
    listed = _LINK.findall(section(text, CONTENTS))
    sections = [f"#{slug(title)}" for title in headings(text) if title != CONTENTS][1:]
    assert listed == [anchor for anchor in sections if anchor in listed]
    assert set(listed) == set(sections), "every section of the README is in its contents"


def broken_links(path: Path) -> list[str]:
    """Relative links (and #anchors) of the Markdown file ``path`` that lead nowhere."""
    text = path.read_text(encoding="utf-8")
    broken = []
    for target in _LINK.findall(outside_code(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{path.name}: {target}: no such file")
        elif anchor and linked.suffix == ".md":
            anchors = {slug(title) for title in headings(linked.read_text(encoding="utf-8"))}
            if anchor not in anchors:
                broken.append(f"{path.name}: {target}: no such heading")
    return broken


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_leads_somewhere(path: Path) -> None:
    assert broken_links(path) == []


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# There\n\n## A section\n")
    page.write_text(
        "# Page\n\n[ok](there.md), [ok](there.md#a-section), [ok](#page), [web](https://x.org)\n"
        "[gone](missing.md), [no heading](there.md#nowhere), [self](#nowhere)\n\n"
        "```md\n[in code](ignored.md)\n```\n"
    )
    assert broken_links(page) == [
        "page.md: missing.md: no such file",
        "page.md: there.md#nowhere: no such heading",
        "page.md: #nowhere: no such heading",
    ]


def test_the_docs_index_lists_every_page() -> None:
    index = section(doc("README.md"), "Documentation")
    for path in doc_files()[1:]:
        assert f"]({path.relative_to(REPO).as_posix()})" in index, path.name


def _keys(node: dict[str, Any], prefix: str = "") -> list[str]:
    found = []
    for name, spec in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        found.append(key)
        found += _keys(spec, f"{key}.")
    return found


def test_every_config_key_is_documented() -> None:
    text = doc("docs/configuration.md")
    keys = _keys(schema())
    assert "build.buildah.volumes" in keys and "preview.command.env" in keys
    assert [key for key in keys if f"`{key}`" not in text] == []


def test_the_architecture_lists_every_folder_of_the_package() -> None:
    text = doc("docs/architecture.md")
    package = REPO / "pipeline_kit"
    folders = sorted(
        path.parent.relative_to(REPO).as_posix() + "/"
        for path in package.rglob("__init__.py")
        if path.parent != package
    )
    assert folders and [folder for folder in folders if f"`{folder}`" not in text] == []


def test_the_architecture_gives_the_layer_order_the_tests_enforce() -> None:
    block = re.search(r"<!-- layers -->\n(.*?)<!-- /layers -->", doc("docs/architecture.md"), re.S)
    assert block
    documented = [tuple(re.findall(r"`([\w.]+)`", line)) for line in block.group(1).splitlines()]
    assert documented == list(LAYERS)
