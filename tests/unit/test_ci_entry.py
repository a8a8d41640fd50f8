"""CI passes only when everything ran: ``.ci/run`` refuses to start without the real builders,
and under ``PIPELINE_KIT_NO_SKIPS=1`` a skipped or xfailed test fails the run.

Both are run for real: ``.ci/run`` copied into a scratch clone whose ``scripts/test`` only
records what it was started with, and pytest in a subprocess with this suite's conftest as a
plugin, on a scratch test file.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

RECORDING_TEST_SCRIPT = """#!/usr/bin/env bash
{ echo "args=$*"; echo "KANIKO_EXECUTOR=$KANIKO_EXECUTOR"; echo "BUILDKIT_BIN=$BUILDKIT_BIN";
  echo "NO_SKIPS=$PIPELINE_KIT_NO_SKIPS"; } > "$(dirname "$0")/../started"
"""


def _executable(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """``<tmp>/work/clone`` holding ``.ci/run`` and a recording ``scripts/test``."""
    root = tmp_path / "work" / "clone"
    (root / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", root / ".ci" / "run")
    _executable(root / "scripts" / "test", RECORDING_TEST_SCRIPT)
    return root


def _ci_run(clone: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KANIKO_EXECUTOR", "BUILDKIT_BIN")}
    return subprocess.run(
        [str(clone / ".ci" / "run")], env={**base, **env}, capture_output=True, text=True
    )


def test_ci_finds_the_builders_above_the_clone_and_forbids_skips(clone: Path) -> None:
    shared = clone.parent / "shared" / "bin"
    _executable(shared / "kaniko" / "executor")
    _executable(shared / "buildkitd")
    _executable(shared / "buildctl")
    run = _ci_run(clone)
    assert run.returncode == 0, run.stderr
    assert (clone / "started").read_text().splitlines() == [
        "args=-q",
        f"KANIKO_EXECUTOR={shared / 'kaniko' / 'executor'}",
        f"BUILDKIT_BIN={shared}",
        "NO_SKIPS=1",
    ]


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("KANIKO_EXECUTOR", "KANIKO_EXECUTOR=/nowhere/executor is not a file"),
        ("BUILDKIT_BIN", "BUILDKIT_BIN=/nowhere does not hold executable buildkitd and buildctl"),
    ],
)
def test_ci_stops_before_the_tests_without_a_builder(
    clone: Path, tmp_path: Path, missing: str, message: str
) -> None:
    """A variable naming nothing is what CI sees on a machine without the executables (the
    search above the clone finds only these fakes, and a variable that is set wins)."""
    good = {
        "KANIKO_EXECUTOR": str(_executable(tmp_path / "k" / "executor")),
        "BUILDKIT_BIN": str(_executable(tmp_path / "b" / "buildkitd").parent),
    }
    _executable(tmp_path / "b" / "buildctl")
    good[missing] = "/nowhere/executor" if missing == "KANIKO_EXECUTOR" else "/nowhere"
    run = _ci_run(clone, **good)
    assert run.returncode == 3
    assert message in run.stderr
    assert "not running a suite that would skip them" in run.stderr
    assert not (clone / "started").exists()


SCRATCH_TESTS = """
import pytest

def test_runs():
    pass

@pytest.mark.skip(reason="no frobnicator here")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known to fail", strict=False)
def test_xfailed():
    assert False
"""


def _pytest(tmp_path: Path, body: str, no_skips: bool) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_scratch.py"
    test_file.write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_KIT_NO_SKIPS"}
    if no_skips:
        env["PIPELINE_KIT_NO_SKIPS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "--rootdir",
         str(tmp_path), "-c", os.devnull, str(test_file)],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip


def test_a_skipped_or_xfailed_test_fails_a_no_skips_run(tmp_path: Path) -> None:
    run = _pytest(tmp_path, SCRATCH_TESTS, no_skips=True)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout
    assert "test_scratch.py::test_skipped: no frobnicator here" in run.stdout
    assert "test_scratch.py::test_xfailed: xfail: known to fail" in run.stdout


def test_skips_pass_outside_ci_and_a_clean_run_passes_in_it(tmp_path: Path) -> None:
    assert _pytest(tmp_path, SCRATCH_TESTS, no_skips=False).returncode == pytest.ExitCode.OK
    clean = _pytest(tmp_path, "def test_runs():\n    pass\n", no_skips=True)
    assert clean.returncode == pytest.ExitCode.OK, clean.stdout
    assert "skipped tests fail this run" not in clean.stdout
