"""``scripts/release`` on a clone of this repository, with real git: the version moves in every
file that pins it and nowhere else, the changelog's Unreleased section goes under the version,
and what cannot be released is refused with nothing changed."""

from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from pipeline_kit import __version__
from tests.support import REPO
from tests.support.gitrepo import GIT_ENV, GitRepo

SCRIPT = REPO / "scripts" / "release"
_MAJOR, _MINOR, _ = __version__.split(".")
NEXT = f"{_MAJOR}.{int(_MINOR) + 1}.0"  # the next minor release


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("release_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader("release_script", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


RELEASE = load_script()


def bare_version(version: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.])v?{re.escape(version)}(?![\w.])")


@pytest.fixture
def clone(tmp_path: Path) -> GitRepo:
    cloned = subprocess.run(
        ["git", "clone", "-q", str(REPO), str(tmp_path / "kit")], capture_output=True, text=True
    )
    assert cloned.returncode == 0, cloned.stderr
    return GitRepo(tmp_path / "kit")


def release(repo: GitRepo, *args: str) -> subprocess.CompletedProcess[str]:
    """This checkout's script against the clone's repository."""
    return subprocess.run(
        [str(SCRIPT), *args], cwd=repo.path, env={**os.environ, **GIT_ENV},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def test_the_script_runs_as_it_is() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")


def test_every_version_in_the_tree_is_a_pin_the_script_moves() -> None:
    """Each occurrence of the version outside the tests, the changelog and the example is in
    one of the script's pin sites, and every pin names this version."""
    names = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    any_version = [
        re.compile(pin.format(v=r"(\d+\.\d+\.\d+)"), re.M) for pin in RELEASE.PINS
    ]  # the pins, whatever version they name
    pins = stray = 0
    for name in names:
        if name.startswith(RELEASE.NOT_PINS) or not (REPO / name).is_file():
            continue
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for pattern in any_version:
            for match in pattern.finditer(text):
                assert match[2] == __version__, f"{name}: {match[0]!r} pins {match[2]}"
                pins += 1
        covered, _ = RELEASE.repin(text, RELEASE.pin_patterns(__version__), "X.Y.Z")
        found = bare_version(__version__).findall(covered)
        assert found == [], f"{name}: {found}: a version no pin site covers"
        stray += len(found)
    assert pins > 40 and stray == 0


def test_a_release_moves_every_pin_and_the_changelog(clone: GitRepo) -> None:
    before = clone.head()
    changelog = (clone.path / "CHANGELOG.md").read_text()
    unreleased = RELEASE.UNRELEASED.search(changelog)["body"].strip("\n")
    result = release(clone, NEXT)
    assert result.returncode == 0, result.stderr
    assert clone.git("rev-parse", "HEAD~1") == before
    assert clone.git("log", "-1", "--format=%s") == f"Release v{NEXT}: version and changelog"
    assert clone.git("status", "--porcelain") == ""
    assert f"scripts/release-pins {NEXT}" in result.stdout

    # Every changed line outside the changelog is the same line with the version moved.
    diff = clone.git("diff", "-U0", "HEAD~1", "HEAD", "--", ".", ":!CHANGELOG.md")
    removed = [line[1:] for line in diff.splitlines() if line[:1] == "-" and line[:3] != "---"]
    added = [line[1:] for line in diff.splitlines() if line[:1] == "+" and line[:3] != "+++"]
    assert len(removed) == len(added) > 20
    for old, new in zip(removed, added, strict=True):
        assert bare_version(__version__).search(old), old
        assert bare_version(__version__).sub(
            lambda m: m[0].replace(__version__, NEXT), old
        ) == new  # fmt: skip
    # ... and nothing of the old version is left where a pin was.
    for name in clone.git("ls-files").split():
        if not name.startswith(RELEASE.NOT_PINS) and name.endswith((".md", ".yml", ".py", ".json")):
            assert not bare_version(__version__).search((clone.path / name).read_text()), name
    assert f'__version__ = "{NEXT}"' in (clone.path / "pipeline_kit" / "__init__.py").read_text()
    template = (clone.path / ".gitlab-ci-template.yml").read_text()
    assert f'PIPELINE_KIT_VERSION: "{NEXT}"' in template

    released = (clone.path / "CHANGELOG.md").read_text()
    assert f"## [Unreleased]\n\n## [{NEXT}] - {today()}\n\n{unreleased}\n\n" in released
    assert released.count("## [") == changelog.count("## [") + 1
    assert f"[Unreleased]: https://github.com/pipeline-kit/pipeline-kit/compare/v{NEXT}...HEAD" in (
        released
    )
    assert f"[{NEXT}]: https://github.com/pipeline-kit/pipeline-kit/" in released


def test_a_second_release_links_the_comparison_and_needs_a_newer_version(clone: GitRepo) -> None:
    assert release(clone, NEXT).returncode == 0
    after_first = clone.head()

    empty = release(clone, "9.0.0")
    assert empty.returncode == 2
    assert "the Unreleased section is empty" in empty.stderr
    assert clone.head() == after_first

    text = (clone.path / "CHANGELOG.md").read_text()
    text = text.replace("## [Unreleased]\n", "## [Unreleased]\n\n### Fixed\n\n- A fix.\n", 1)
    clone.commit({"CHANGELOG.md": text}, message="a fix")
    for version in (NEXT, __version__):
        same = release(clone, version)
        assert same.returncode == 2, same.stdout
        assert "is not newer than" in same.stderr or "is older than" in same.stderr, same.stderr
    assert release(clone, "9.0.0").returncode == 0
    released = (clone.path / "CHANGELOG.md").read_text()
    assert f"## [9.0.0] - {today()}\n\n### Fixed\n\n- A fix.\n\n## [{NEXT}]" in released
    assert f"[9.0.0]: https://github.com/pipeline-kit/pipeline-kit/compare/v{NEXT}...v9.0.0" in (
        released
    )


@pytest.mark.parametrize(
    ("change", "version", "message"),
    [
        ("modified", NEXT, "uncommitted changes or untracked files"),
        ("untracked", NEXT, "uncommitted changes or untracked files"),
        ("empty", NEXT, "the Unreleased section is empty"),
        (None, "0.0.1", "is older than the current version"),
        (None, f"v{NEXT}", "is not X.Y.Z"),
        (None, "1.2", "is not X.Y.Z"),
    ],
)
def test_refused_with_exit_2_and_nothing_changed(
    clone: GitRepo, change: str | None, version: str, message: str
) -> None:
    if change == "modified":
        (clone.path / "README.md").write_text("changed\n")
    elif change == "untracked":
        (clone.path / "notes.txt").write_text("x\n")
    elif change == "empty":
        text = (clone.path / "CHANGELOG.md").read_text()
        body = RELEASE.UNRELEASED.search(text)["body"]
        clone.commit({"CHANGELOG.md": text.replace(body, "\n### Added\n\n", 1)}, message="empty")
    head = clone.head()
    status = clone.git("status", "--porcelain")
    result = release(clone, version)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert result.stderr.startswith("release: ")
    assert clone.head() == head
    assert clone.git("status", "--porcelain") == status
