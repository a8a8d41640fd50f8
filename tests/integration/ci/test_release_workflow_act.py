"""The release workflow's first job under act (host mode, offline), on a clone released by
scripts/release and scripts/release-pins and tagged: the tag reaches the job as GitHub gives it
(``github.ref_name``), and a tag that is not the version the commit ships stops the release.

The whole release under act, with stand-ins for the remote actions, is
tests/integration/release/test_release_under_act.py; the jobs' scripts run one by one in
tests/unit/definitions/test_release_workflow.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.gitrepo import GIT_ENV, GitRepo
from tests.support.release import NEXT, act_binary, released_clone


@pytest.fixture
def tagged(tmp_path: Path) -> GitRepo:
    return released_clone(tmp_path / "kit", tag=True)


def act_check_job(repo: GitRepo, tag: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    event = workdir / "event.json"
    event.write_text(
        json.dumps({"ref": f"refs/tags/{tag}", "repository": {"default_branch": "main"}})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ACT"))}
    return subprocess.run(
        [act_binary(), "push", "--workflows", ".github/workflows/release.yml", "--job", "check",
         "--eventpath", str(event), "--platform", "ubuntu-latest=-self-hosted",
         "--no-cache-server", "--action-offline-mode"],
        cwd=repo.path, env={**env, **GIT_ENV}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_check_job_passes_the_tag_of_the_release_under_act(
    tagged: GitRepo, tmp_path: Path
) -> None:
    run = act_check_job(tagged, f"v{NEXT}", tmp_path)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert f"::set-output:: version={NEXT}" in log
    assert f"wrote pipeline_kit/onboard/release.json: v{NEXT} at {tagged.head()}" in log
    assert "Job succeeded" in log


def test_the_check_job_stops_a_tag_of_another_version_under_act(
    tagged: GitRepo, tmp_path: Path
) -> None:
    """The job fails at its version step and sets no output. The step's message is checked
    where the step's script runs under bash (tests/unit/definitions/test_release_workflow.py):
    act may report a failed step before it has logged that step's last lines."""
    run = act_check_job(tagged, "v9.9.9", tmp_path)
    log = run.stdout + run.stderr
    assert run.returncode != 0
    assert "❌  Failure - Main version=$(sed -n" in log
    assert "Success - Main actions/checkout@" in log
    assert "set-output:: version=" not in log
