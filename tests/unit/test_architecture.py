"""The package's shape, as a newcomer reads it from the tree: imports go one way, down the
pipeline; commands stand on their own; only the CLI knows click and only adapters reach the
outside world. Read from the source with ``ast`` (every import, inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.layers import LAYERS

PACKAGE = REPO / "pipeline_kit"

# LAYERS: lowest first; a module may import its own layer and those below it.
OUTSIDE_WORLD = ("subprocess", "socket", "http.client", "urllib.request", "requests", "ssl")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
    return out


def layer_of(module: str) -> int:
    """The layer of ``pipeline_kit.<first part>...``."""
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else parts[0]
    for index, names in enumerate(LAYERS):
        if first in names:
            return index
    raise AssertionError(f"{module}: in no layer; add its folder to LAYERS")


MODULES = _modules()


def test_every_folder_has_a_layer_and_a_one_line_docstring() -> None:
    for name, path in MODULES.items():
        layer_of(name)
        if path.name == "__init__.py" and name != "pipeline_kit":
            doc = ast.get_docstring(ast.parse(path.read_text()))
            assert doc, f"{path}: a package says in one line which stage or system it is"
            assert "\n\n" not in doc.strip() or name in LONG_DOCSTRINGS, name


# Packages whose docstring also explains their Protocol and registry (kept from before).
LONG_DOCSTRINGS = {
    "pipeline_kit.append",
    "pipeline_kit.build.builders",
    "pipeline_kit.preview",
    "pipeline_kit.lint",
    "pipeline_kit.smoke",
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_the_pipeline(name: str) -> None:
    mine = layer_of(name)
    for line, imported in _imports(MODULES[name]):
        if not imported.startswith("pipeline_kit"):
            continue
        if imported.rsplit(".", 1)[0] in MODULES or imported in MODULES:
            target = imported if imported in MODULES else imported.rsplit(".", 1)[0]
            assert layer_of(target) <= mine, (
                f"{MODULES[name]}:{line} imports {imported}, a higher stage than {name}"
            )


def test_no_command_imports_another_command() -> None:
    for name, path in MODULES.items():
        if not name.startswith("pipeline_kit.commands."):
            continue
        for line, imported in _imports(path):
            if imported.startswith("pipeline_kit.commands") and imported not in (name,):
                owner = imported if imported in MODULES else imported.rsplit(".", 1)[0]
                assert owner in (name, "pipeline_kit.commands"), f"{path}:{line} {imported}"


def test_only_the_cli_imports_click_and_only_adapters_reach_out() -> None:
    for name, path in MODULES.items():
        for line, imported in _imports(path):
            top = imported.split(".")[0]
            if top == "click":
                assert name == "pipeline_kit.cli", f"{path}:{line} imports click"
            if imported in OUTSIDE_WORLD or top in OUTSIDE_WORLD:
                assert name.startswith("pipeline_kit.adapters"), f"{path}:{line} {imported}"


def test_the_check_can_fail() -> None:
    """A made-up upward import and a made-up layer are caught."""
    with pytest.raises(AssertionError):
        layer_of("pipeline_kit.nowhere.x")
    assert layer_of("pipeline_kit.detect.keys") < layer_of("pipeline_kit.build.plan")
