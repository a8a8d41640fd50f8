"""The tests' own shape: pytest collects every folder of tests/; what tests share lives in
tests/support, so no test module (nor conftest.py) imports another test module, and
tests/support imports none either. Imports are read from the source with ``ast``: every
import, inside functions too, relative ones resolved."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

from tests.support import REPO

TESTS = REPO / "tests"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of everything ``source`` imports, ``module`` being its own name
    (for relative imports); ``from a import b`` gives both ``a`` and ``a.b``."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
    return out


def is_test_module(name: str) -> bool:
    """A module pytest collects or configures with: under tests/unit or tests/integration,
    a ``test_*`` module or a ``conftest`` anywhere under tests/."""
    parts = name.split(".")
    if parts[0] != "tests":
        return False
    last = parts[-1]
    return (
        last.startswith("test_") or last == "conftest" or parts[1:2] in (["unit"], ["integration"])
    )


def offending_imports(path: Path) -> list[str]:
    name = module_name(path)
    found = []
    for line, imported in imported_modules(path.read_text(), name, path.name == "__init__.py"):
        if is_test_module(imported):
            found.append(f"{path.relative_to(REPO)}:{line} imports {imported}")
    return found


PYTHON_FILES = sorted(TESTS.rglob("*.py"))


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_module_imports_another(path: Path) -> None:
    assert offending_imports(path) == []


def test_the_tree_has_the_modules_the_check_reads() -> None:
    names = {module_name(p) for p in PYTHON_FILES}
    assert "tests.unit.test_test_layout" in names and "tests.support.gitrepo" in names
    assert is_test_module("tests.unit.test_test_layout")
    assert is_test_module("tests.conftest")
    assert not is_test_module("tests.support.gitrepo")


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from tests.unit.test_architecture import LAYERS\n", "tests.unit.test_docs", True),
        ("import tests.integration.build.test_build\n", "tests.support.x", True),
        ("def f():\n    from .test_units import CASES\n", "tests.unit.append.test_more", True),
        ("from . import test_units\n", "tests.unit.append.test_more", True),
        ("from ..conftest import x\n", "tests.unit.build.test_x", True),
        ("from tests.support.gitrepo import GitRepo\n", "tests.unit.test_docs", False),
        ("from .services.registry import free_port\n", "tests.support.builds", False),
        ("import pipeline_kit.detect.keys\n", "tests.unit.test_docs", False),
    ],
)
def test_the_check_can_fail(source: str, module: str, expected: bool) -> None:
    imports = imported_modules(source, module)
    assert any(is_test_module(name) for _, name in imports) is expected, imports


def skipped_folders(patterns: list[str]) -> list[str]:
    """The folders under tests/ whose name matches one of ``patterns`` (``norecursedirs``):
    pytest would collect nothing below them."""
    return sorted(
        str(path.relative_to(REPO))
        for path in TESTS.rglob("*")
        if path.is_dir()
        and "__pycache__" not in path.parts
        and any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)
    )


def test_pytest_recurses_into_every_test_folder(pytestconfig: pytest.Config) -> None:
    """pytest's default ``norecursedirs`` has ``build``: tests/unit/build and
    tests/integration/build would silently never run."""
    assert skipped_folders(list(pytestconfig.getini("norecursedirs"))) == []


def test_the_folder_check_can_fail() -> None:
    defaults = ["*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}"]
    assert skipped_folders(defaults) == ["tests/integration/build", "tests/unit/build"]
