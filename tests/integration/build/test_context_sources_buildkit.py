"""Which COPY/ADD/mount sources that take nothing stop a build: the real BuildKit against detect.

Each case is one instruction over the same small context (and a ``.dockerignore``), built by
the real buildkitd (tests/support/services/buildkitd.py) and given to ``pipeline-kit detect``
in a git repository of that context. BuildKit fails with ``"/<path>": not found`` exactly
where detect exits 2 naming the line; where BuildKit builds, detect answers.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.gitrepo import GitRepo, cli
from tests.support.services.buildkitd import BuildkitDaemon

# name: (instruction, .dockerignore, whether BuildKit refuses it)
CASES: dict[str, tuple[str, str, bool]] = {
    "missing file": ("COPY missing.txt /x/", "", True),
    "one of two missing": ("COPY a.txt missing.txt /x/", "", True),
    "ADD of a missing file": ("ADD missing.txt /x/", "", True),
    "bind mount of a missing path": ("RUN --mount=type=bind,source=nope,target=/m true", "", True),
    "file excluded": ("COPY a.txt /x/", "a.txt\n", True),
    "directory excluded": ("COPY d /x/", "d\n", True),
    "directory excluded by **/": ("COPY d/__pycache__ /x/", "**/__pycache__\n", True),
    "wildcard matching nothing": ("COPY nomatch*.txt /x/", "", False),
    "wildcard matching nothing beside a file": ("COPY a.txt nomatch*.txt /x/", "", False),
    "wildcard directory matching nothing": ("COPY nod*/f /x/", "", False),
    "wildcard whose matches are all excluded": ("COPY *.txt /x/", "*.txt\n", False),
    "directory whose files are all excluded": ("COPY d /x/", "d/*\n", False),
    "the whole context, all excluded": ("COPY . /x/", "*\n", False),
    "a file that is there": ("COPY a.txt d /x/", "", False),
}

CONFIG = "image: registry.example.com/team/svc\n"


def _context(root: Path, instruction: str, ignore: str) -> Path:
    context = root / "ctx"
    (context / "d" / "__pycache__").mkdir(parents=True)
    (context / "a.txt").write_text("a\n")
    (context / "d" / "f").write_text("f\n")
    (context / "d" / "__pycache__" / "m.pyc").write_text("pyc\n")
    (context / "Dockerfile").write_text(f"FROM scratch\n{instruction}\n")
    (context / "pipeline-kit.yaml").write_text(CONFIG)
    if ignore:
        # The kit's own files stay in the context, whatever the case excludes.
        (context / ".dockerignore").write_text(ignore + "!Dockerfile\n!pipeline-kit.yaml\n")
    return context


def _buildkit_refuses(buildkitd: BuildkitDaemon, context: Path, out: Path) -> tuple[bool, str]:
    proc = subprocess.run(
        [
            str(buildkitd.bin_dir / "buildctl"),
            "--addr",
            buildkitd.address,
            "build",
            "--progress=plain",
            "--frontend=dockerfile.v0",
            f"--local=context={context}",
            f"--local=dockerfile={context}",
            f"--output=type=local,dest={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode != 0, proc.stderr


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_detect_refuses_what_buildkit_refuses(
    case: tuple[str, str, bool], tmp_path: Path, buildkitd: BuildkitDaemon
) -> None:
    instruction, ignore, refused = case
    context = _context(tmp_path, instruction, ignore)
    repo = GitRepo.init(context)
    repo.commit(message="context")

    buildkit_refuses, stderr = _buildkit_refuses(buildkitd, context, tmp_path / "out")
    if buildkit_refuses:
        assert "not found" in stderr, stderr[-2000:]
    assert buildkit_refuses == refused, stderr[-2000:]

    proc = cli("detect", "--format", "json", "--base", "HEAD", "--head", "HEAD", cwd=context)
    if refused:
        assert proc.returncode == 2, proc.stdout
        assert proc.stderr.startswith("pipeline-kit: error: Dockerfile:2: ")
    else:
        assert proc.returncode == 0, proc.stderr
