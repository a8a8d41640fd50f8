"""``scripts/release-pins`` on a clone of this repository, with real git and zizmor offline: a
release's reusable workflows call the action by the SHA of the commit released, never by a tag
that can be moved, and the wheel built after the stamp makes ``init`` pin the release."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline_kit import __version__
from tests.support import REPO
from tests.support.example_image import CACHE
from tests.support.gitrepo import GIT_ENV, GitRepo, cli
from tests.support.tools import unpinned_uses

ROOT = REPO
SCRIPT = ROOT / "scripts" / "release-pins"
VERSION = __version__
# The action (not the kit's reusable workflows), wherever a workflow calls it.
ACTION_USES = re.compile(r"^\s*(?:-\s+)?(uses:\s*pipeline-kit/pipeline-kit(?!/\.github/).*)$", re.M)
WORKFLOW_FILE = re.compile(
    r"(\.github/workflows|workflows|pipeline_kit/onboard/workflows)/[\w.-]+\.yml"
)
STAMP = Path("pipeline_kit") / "onboard" / "release.json"


def action_uses(workflows: list[Path]) -> list[str]:
    return [use for path in workflows for use in ACTION_USES.findall(path.read_text())]


@pytest.fixture
def clone(tmp_path: Path) -> GitRepo:
    """The repository under test, cloned: the script commits there, never here. (The user's
    git settings stay for the clone: they may be what makes this checkout a safe directory.)"""
    cloned = subprocess.run(
        ["git", "clone", "-q", str(ROOT), str(tmp_path / "kit")], capture_output=True, text=True
    )
    assert cloned.returncode == 0, cloned.stderr
    return GitRepo(tmp_path / "kit")


def release_pins(repo: GitRepo, *args: str) -> subprocess.CompletedProcess[str]:
    """The script as a release runs it, in the clone (its own copy there may not be committed
    yet: this checkout's copy runs against the clone's repository)."""
    return subprocess.run(
        [str(SCRIPT), *args], cwd=repo.path, env={**os.environ, **GIT_ENV},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_script_runs_as_it_is() -> None:
    """Executable, on python3's standard library alone."""
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")


def test_a_release_pins_every_action_reference_to_its_own_commit(clone: GitRepo) -> None:
    workflows = sorted((clone.path / ".github" / "workflows").glob("*.yml"))
    before = action_uses(workflows)
    assert len(before) > 5
    # The failing direction: the development tree, by tag, is what zizmor's default refuses.
    found = unpinned_uses(*workflows)
    assert len(found) == len(before)
    assert all("pipeline-kit/pipeline-kit@" in feature for feature in found)

    released = clone.head()
    tags = clone.git("tag", "--list")
    result = release_pins(clone, VERSION)
    assert result.returncode == 0, result.stderr
    release = clone.head()
    assert clone.git("rev-parse", "HEAD~1") == released
    assert clone.git("log", "-1", "--format=%s") == (
        f"Release v{VERSION}: pin the action to {released}"
    )
    assert action_uses(workflows) == [
        f"uses: pipeline-kit/pipeline-kit@{released} # v{VERSION}"
    ] * len(before)
    assert unpinned_uses(*workflows) == []

    changed = clone.git("diff", "--name-only", "HEAD~1", "HEAD").splitlines()
    assert ".github/workflows/pipeline.yml" in changed
    assert all(WORKFLOW_FILE.fullmatch(path) for path in changed), changed
    for path in ("action.yml", "scripts", "pipeline_kit"):  # the action that runs is R's
        assert clone.git("rev-parse", f"HEAD~1:{path}") == clone.git("rev-parse", f"HEAD:{path}")
    assert clone.git("status", "--porcelain") == ""
    assert clone.git("tag", "--list") == tags  # it tags nothing: it says how
    assert f"git tag v{VERSION} {release}" in result.stdout
    assert "build the wheel from P after writing the stamp with scripts/release-pins --stamp" in (
        result.stdout
    )
    assert f".github/workflows/pipeline.yml:{_line_of(clone, 'pipeline.yml')}:" in result.stdout


def _line_of(repo: GitRepo, name: str) -> int:
    text = repo.git("show", f"HEAD~1:.github/workflows/{name}")
    return next(
        number for number, line in enumerate(text.splitlines(), 1) if ACTION_USES.match(line)
    )


def test_the_callers_references_are_set_to_the_version_released(clone: GitRepo) -> None:
    """A version whose callers still name the previous one: they name the new one in P (init
    pins them by SHA; a copy is pinned by hand), and the action is pinned with its comment."""
    init = clone.path / "pipeline_kit" / "__init__.py"
    released = clone.commit(
        {"pipeline_kit/__init__.py": init.read_text().replace(VERSION, "9.8.7")}
    )
    result = release_pins(clone, "9.8.7")
    assert result.returncode == 0, result.stderr
    callers = [
        *sorted((clone.path / "workflows").glob("*.yml")),
        *sorted((clone.path / "pipeline_kit" / "onboard" / "workflows").glob("*.yml")),
    ]
    refs = re.findall(r"pipeline-kit/pipeline-kit/\.github/workflows/[\w.-]+@(.*)",
                      "".join(p.read_text() for p in callers))  # fmt: skip
    assert len(refs) == 8 and set(refs) == {"v9.8.7"}
    assert "workflows/main.yml:" in result.stdout and f"@v{VERSION} -> " in result.stdout
    workflows = sorted((clone.path / ".github" / "workflows").glob("*.yml"))
    assert set(action_uses(workflows)) == {f"uses: pipeline-kit/pipeline-kit@{released} # v9.8.7"}
    changed = clone.git("diff", "--name-only", "HEAD~1", "HEAD").splitlines()
    assert "pipeline_kit/onboard/workflows/main.yml" in changed
    assert all(WORKFLOW_FILE.fullmatch(path) for path in changed), changed


def test_refusals_change_nothing(clone: GitRepo) -> None:
    head = clone.head()

    def refused(*args: str, says: str) -> None:
        result = release_pins(clone, *args)
        assert result.returncode != 0, result.stdout
        assert says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert clone.head() == head

    for version in ("v0.1.0", "0.1", "0.1.0-rc.1", "01.2.3"):
        refused(version, says="is not X.Y.Z")
    refused(
        "99.0.0", says=f"not the version this commit ships (pipeline_kit/__init__.py: {VERSION})"
    )
    refused("--stamp", VERSION, says="is not a release commit")  # R, not P: nothing pinned yet
    assert not (clone.path / STAMP).exists()

    action = clone.path / "action.yml"
    original = action.read_text()
    action.write_text(original + "# edited\n")
    refused(VERSION, says="uncommitted changes")
    action.write_text(original)
    (clone.path / "notes.txt").write_text("untracked\n")
    refused(VERSION, says="untracked files")
    (clone.path / "notes.txt").unlink()
    assert clone.git("status", "--porcelain") == ""

    # The action itself calling the kit by a tag: pinning it would change the action.
    head = clone.commit(
        {"action.yml": original + "    - uses: pipeline-kit/pipeline-kit/tools@v1\n"}
    )
    refused(VERSION, says="the action would differ")
    assert clone.git("status", "--porcelain") == ""
    # A reusable workflow calling the kit's: that one's own references are R's, by tag.
    nested = "jobs:\n  x:\n    uses: pipeline-kit/pipeline-kit/.github/workflows/cleanup.yml@v1\n"
    head = clone.commit({"action.yml": original, ".github/workflows/nested.yml": nested})
    refused(VERSION, says=".github/workflows/nested.yml: uses: pipeline-kit/pipeline-kit/.github")
    assert clone.git("status", "--porcelain") == ""


@pytest.mark.integration  # builds a wheel from the test cache's build system
def test_the_wheel_built_after_the_stamp_makes_init_pin_the_release(
    clone: GitRepo, tmp_path: Path
) -> None:
    """The whole release: pins, stamp, wheel; the wheel's init writes callers calling the
    release commit P by SHA (P's reusable workflows, whose action is pinned to R)."""
    wheelhouse = CACHE / "kit-wheelhouse"
    if not any(wheelhouse.glob("setuptools-*.whl")):
        pytest.fail(f"no build system in {wheelhouse}: run scripts/test-images (scripts/test does)")
    assert release_pins(clone, VERSION).returncode == 0
    release = clone.head()
    result = release_pins(clone, "--stamp", VERSION)
    assert result.returncode == 0, result.stderr
    assert json.loads((clone.path / STAMP).read_text()) == {"version": VERSION, "commit": release}
    ignored = subprocess.run(["git", "check-ignore", "-q", str(STAMP)], cwd=ROOT)
    assert ignored.returncode == 0  # the stamp never dirties the tree it describes

    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
         "--find-links", str(wheelhouse), "-w", str(tmp_path / "dist"), str(clone.path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("llm_pipeline_kit-*.whl")
    site = tmp_path / "site"  # the wheel installed where no git repository is
    zipfile.ZipFile(wheel).extractall(site)
    assert json.loads((site / STAMP).read_text())["commit"] == release

    service = GitRepo.init(tmp_path / "svc")
    shutil.copy(ROOT / "examples" / "llm-service" / "Dockerfile", service.path / "Dockerfile")
    service.git("remote", "add", "origin", "https://github.com/acme/svc.git")
    service.commit()
    result = cli("init", cwd=service.path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    written = sorted((service.path / ".github" / "workflows").glob("*.yml"))
    refs = re.findall(r"uses: (pipeline-kit/\S+ .*)", "".join(p.read_text() for p in written))
    assert len(refs) == 4
    assert {ref.split("@", 1)[1] for ref in refs} == {f"{release} # v{VERSION}"}
    assert unpinned_uses(*written) == []
