"""The checkers the tests run offline: zizmor, kubernetes-validate, gitlab-ci-local."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO
from tests.support.gitrepo import GIT_ENV, GitRepo

BIN = Path(sys.executable).parent
TEMPLATE = REPO / ".gitlab-ci-template.yml"
GITLAB_CI_LOCAL = REPO / ".tools" / "node_modules" / ".bin" / "gitlab-ci-local"


def tool(name: str) -> str:
    found = BIN / name
    if found.is_file():
        return str(found)
    which = shutil.which(name)
    if which is None:
        pytest.fail(f"{name} is not installed: scripts/bootstrap --test installs it")
    return which


def unpinned_uses(*paths: Path) -> list[str]:
    """zizmor's ``unpinned-uses`` findings (the text of what each names) under its default
    policy: no configuration, so no exemption for the kit."""
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--no-config", "--format", "json", *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.stdout.startswith("["), result.stderr[-2000:]
    return [
        finding["locations"][0]["concrete"]["feature"]
        for finding in json.loads(result.stdout)
        if finding["ident"] == "unpinned-uses"
    ]


def validate(path: Path) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.30.0", str(path)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def rendered(tmp_path: Path, include: str) -> dict[str, Any]:
    """The pipeline as gitlab-ci-local resolves it (inputs, extends), with no job run."""
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail(f"{GITLAB_CI_LOCAL} is missing: run scripts/test-tools (scripts/test does).")
    repo = GitRepo.init(tmp_path / "project")
    shutil.copy(TEMPLATE, repo.path / ".gitlab-ci-template.yml")
    repo.commit({".gitlab-ci.yml": include}, message="ci")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI", "GITLAB"))}
    proc = subprocess.run(
        [str(GITLAB_CI_LOCAL), "--cwd", ".", "--preview", "--color=false"],
        cwd=repo.path, env={**env, **GIT_ENV, "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    documents = list(yaml.safe_load_all(proc.stdout[proc.stdout.index("---") :]))
    pipeline: dict[str, Any] = documents[-1]
    return pipeline
