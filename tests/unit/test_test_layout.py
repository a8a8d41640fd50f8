"""The tests' own shape: pytest collects every folder of tests/."""

from __future__ import annotations

import fnmatch

import pytest

from tests.support import REPO

TESTS = REPO / "tests"


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
