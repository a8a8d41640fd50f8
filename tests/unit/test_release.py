"""``scripts/release`` on a clone of this repository, with real git: the version moves in every
file that pins it and nowhere else, the changelog's Unreleased section goes under the version,
and what cannot be released is refused with nothing changed."""

from __future__ import annotations

import datetime
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from pipeline_kit import __version__
from tests.support import REPO
from tests.support.example_image import CACHE
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


def test_the_first_release_of_the_current_version_moves_the_changelog_alone(
    clone: GitRepo,
) -> None:
    """No release recorded yet: the version the tree ships can be released as it is."""
    assert not RELEASE.RELEASED.search((clone.path / "CHANGELOG.md").read_text())
    result = release(clone, __version__)
    assert result.returncode == 0, result.stderr
    assert clone.git("diff", "--name-only", "HEAD~1", "HEAD") == "CHANGELOG.md"
    released = (clone.path / "CHANGELOG.md").read_text()
    assert f"## [Unreleased]\n\n## [{__version__}] - {today()}\n" in released
    assert (
        f"[{__version__}]: https://github.com/pipeline-kit/pipeline-kit/releases/tag/v{__version__}"
        in released
    )
    again = release(clone, __version__)
    assert again.returncode == 2 and "is not newer than" in again.stderr


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


BUILD_DIST = REPO / "scripts" / "build-dist"


def build_dist(repo: GitRepo, out: Path) -> subprocess.CompletedProcess[str]:
    wheelhouse = CACHE / "kit-wheelhouse"
    if not any(wheelhouse.glob("setuptools-*.whl")):
        pytest.fail(f"no build system in {wheelhouse}: run scripts/test-images (scripts/test does)")
    # pip's own settings stay out: the build system comes from the wheelhouse alone.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env.update(
        GIT_ENV, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse), PIP_CONFIG_FILE=os.devnull
    )
    env.pop("SOURCE_DATE_EPOCH", None)
    return subprocess.run(
        [str(BUILD_DIST), "--out", str(out)], cwd=repo.path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.integration  # builds from the test cache's build system
def test_the_sdist_and_wheel_are_the_same_bytes_wherever_they_are_built(
    clone: GitRepo, tmp_path: Path
) -> None:
    """Two clones of one commit, at other paths, with other file times and a release stamp,
    built one after the other: byte for byte the same sdist and wheel."""
    other = GitRepo(tmp_path / "elsewhere" / "second-clone")
    subprocess.run(["git", "clone", "-q", str(clone.path), str(other.path)], check=True)
    os.utime(other.path / "README.md", (1, 1))  # a checkout's times are not the commit's
    stamp = json.dumps({"version": __version__, "commit": clone.head()}) + "\n"
    for repo in (clone, other):
        (repo.path / "pipeline_kit" / "onboard" / "release.json").write_text(stamp)
    first, second = build_dist(clone, tmp_path / "one"), build_dist(other, tmp_path / "two")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout.replace(str(tmp_path / "one"), "") == second.stdout.replace(
        str(tmp_path / "two"), ""
    )
    hashes = {}
    for out in (tmp_path / "one", tmp_path / "two"):
        for path in sorted(out.iterdir()):
            hashes.setdefault(path.name, set()).add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert sorted(hashes) == [
        f"llm_pipeline_kit-{__version__}-py3-none-any.whl",
        f"llm_pipeline_kit-{__version__}.tar.gz",
    ]
    assert all(len(found) == 1 for found in hashes.values()), hashes
    assert all(f"{next(iter(found))}  " in first.stdout for found in hashes.values())

    commit_time = int(clone.git("log", "-1", "--format=%ct"))
    with tarfile.open(tmp_path / "one" / f"llm_pipeline_kit-{__version__}.tar.gz") as sdist:
        members = sdist.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
        (commit_time, 0, 0, "", "")
    }
    root = f"llm_pipeline_kit-{__version__}"
    assert {f"{root}/PKG-INFO", f"{root}/pipeline_kit/__init__.py"} <= set(names)
    with zipfile.ZipFile(tmp_path / "one" / f"{root}-py3-none-any.whl") as wheel:
        metadata = wheel.read(f"{root}.dist-info/METADATA").decode()
        assert json.loads(wheel.read("pipeline_kit/onboard/release.json")) == json.loads(stamp)
    assert f"Name: llm-pipeline-kit\nVersion: {__version__}\n" in metadata


def test_build_dist_refuses_a_tree_that_is_not_its_commit(clone: GitRepo, tmp_path: Path) -> None:
    (clone.path / "pipeline_kit" / "__init__.py").write_text("changed = True\n")
    result = build_dist(clone, tmp_path / "out")
    assert result.returncode == 2
    assert "tracked files have uncommitted changes" in result.stderr
    assert not (tmp_path / "out").exists()


NOTES = REPO / "scripts" / "release-notes"
CHANGELOG_OF_TWO = """# Changelog

## [Unreleased]

### Added

- Not released yet.

## [1.1.0] - 2026-12-01

### Fixed

- The second release.

## [1.0.0] - 2026-11-01

### Added

- The first release.

[Unreleased]: https://github.com/pipeline-kit/pipeline-kit/compare/v1.1.0...HEAD
[1.1.0]: https://github.com/pipeline-kit/pipeline-kit/compare/v1.0.0...v1.1.0
"""


def release_notes(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NOTES), *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("version", "body"),
    [
        ("1.1.0", "### Fixed\n\n- The second release.\n"),
        ("v1.0.0", "### Added\n\n- The first release.\n"),
    ],
)
def test_release_notes_are_the_versions_section(tmp_path: Path, version: str, body: str) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG_OF_TWO)
    result = release_notes(version, "--changelog", str(changelog))
    assert result.returncode == 0, result.stderr
    assert result.stdout == body


@pytest.mark.parametrize(
    ("version", "says"),
    [("1.2.0", "no `## [1.2.0] - YYYY-MM-DD` section"), ("1.0.0", "section of 1.0.0 is empty")],
)
def test_release_notes_refuse_a_missing_or_empty_section(
    tmp_path: Path, version: str, says: str
) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG_OF_TWO.replace("- The first release.\n", ""))
    result = release_notes(version, "--changelog", str(changelog))
    assert result.returncode == 2
    assert says in result.stderr and str(changelog) in result.stderr
    assert result.stdout == ""


def test_release_notes_of_a_release_the_script_made(clone: GitRepo) -> None:
    unreleased = RELEASE.UNRELEASED.search((clone.path / "CHANGELOG.md").read_text())["body"]
    assert release(clone, NEXT).returncode == 0
    result = release_notes(NEXT, "--changelog", str(clone.path / "CHANGELOG.md"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == unreleased.strip("\n") + "\n"
    assert release_notes(NEXT).returncode == 2  # this checkout has not released it


PIN_IMAGE = REPO / "scripts" / "pin-builder-image"
DIGEST_REF = "ghcr.io/pipeline-kit/kaniko:" + __version__ + "@sha256:" + "0123456789abcdef" * 4
PINNED_FILES = (".gitlab-ci-template.yml", ".github/workflows/pipeline.yml")


def definitions_copy(root: Path) -> Path:
    for name in PINNED_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((REPO / name).read_bytes())
    return root


def kaniko_image_defaults(root: Path) -> list[str]:
    header = (root / ".gitlab-ci-template.yml").read_text().split("\n---\n", 1)[0]
    template = yaml.safe_load(header)["spec"]["inputs"]["kaniko-image"]["default"]
    workflow = yaml.safe_load((root / ".github" / "workflows" / "pipeline.yml").read_text())
    called = workflow[True]["workflow_call"]["inputs"]["kaniko-image"]["default"]
    return [template, called]


def test_the_builder_image_is_named_by_digest_in_both_defaults(tmp_path: Path) -> None:
    root = definitions_copy(tmp_path)
    assert DIGEST_REF not in kaniko_image_defaults(root)
    result = subprocess.run(
        [str(PIN_IMAGE), "--root", str(root), DIGEST_REF], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert kaniko_image_defaults(root) == [DIGEST_REF, DIGEST_REF]
    for name in PINNED_FILES:  # that line and no other
        before, after = (
            (REPO / name).read_text().splitlines(),
            (root / name).read_text().splitlines(),
        )
        changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
        assert len(changed) == 1 and changed[0][1].endswith(f"default: {DIGEST_REF}"), changed


@pytest.mark.parametrize(
    "reference",
    [
        "ghcr.io/pipeline-kit/kaniko:0.1.0",  # a tag can be moved
        "ghcr.io/pipeline-kit/kaniko@sha256:" + "0123456789ABCDEF" * 4,
        "ghcr.io/pipeline-kit/kaniko@sha256:" + "0" * 63,
        "ghcr.io/pipeline-kit/kaniko:0.1.0@sha256:" + "0" * 64 + "\ndefault: x",
    ],
)
def test_pin_builder_image_refuses_what_is_not_a_digest(tmp_path: Path, reference: str) -> None:
    root = definitions_copy(tmp_path)
    result = subprocess.run(
        [str(PIN_IMAGE), "--root", str(root), reference], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "is not an image by digest" in result.stderr
    for name in PINNED_FILES:
        assert (root / name).read_bytes() == (REPO / name).read_bytes()
