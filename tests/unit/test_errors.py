"""Bad input gets one clear paragraph naming the input, the right exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.gitrepo import GitRepo, cli, cli_env

GOOD_DOCKERFILE = "FROM python:3.11-slim AS base\nFROM base AS deps\nFROM deps AS code\n"


def _repo(tmp_path: Path, config: str, dockerfile: str = GOOD_DOCKERFILE) -> GitRepo:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit({"Dockerfile": dockerfile, "pipeline-kit.yaml": config, "app.py": "1\n"})
    repo.commit({"app.py": "2\n"})
    return repo


CASES = [
    (
        "malformed YAML",
        "image: registry.example.com/a\nlayers:\n  base: [base\n",
        GOOD_DOCKERFILE,
        ["detect"],
        2,
        ["pipeline-kit.yaml:4:1", "not valid YAML"],
    ),
    (
        "unknown key with a did-you-mean",
        "image: registry.example.com/a\nlayer:\n  base: base\n",
        GOOD_DOCKERFILE,
        ["detect"],
        2,
        ["pipeline-kit.yaml:2:1", "layer: unknown key", "Did you mean 'layers'?"],
    ),
    (
        "nested unknown key",
        "lint:\n  disabled: [PK005]\n",
        GOOD_DOCKERFILE,
        ["config", "show"],
        2,
        ["pipeline-kit.yaml:2:3", "lint.disabled: unknown key", "Did you mean 'disable'?"],
    ),
    (
        "wrong type",
        "image: registry.example.com/a\ncontext: 3\n",
        GOOD_DOCKERFILE,
        ["detect"],
        2,
        ["pipeline-kit.yaml:2:1", "context: expected string, got int 3"],
    ),
    (
        "image with a tag",
        "image: registry.example.com/team/svc:latest\n",
        GOOD_DOCKERFILE,
        ["config", "show"],
        2,
        ["pipeline-kit.yaml:1:1", "without tag or digest"],
    ),
    (
        "a layer naming a missing stage",
        "layers:\n  base: base\n  deps: dep\n  code: code\n",
        GOOD_DOCKERFILE,
        ["detect"],
        2,
        [
            "pipeline-kit.yaml:3:3",
            "layers.deps: stage 'dep' is not in Dockerfile",
            "Did you mean 'deps'?",
        ],
    ),
    (
        "a Dockerfile the parser rejects",
        "layers:\n  code: code\n",
        "FROM python:3.11 AS code\nRUN <<EOF\necho unterminated\n",
        ["detect"],
        2,
        ["Dockerfile", "BuildKit's parser rejects it", "unterminated heredoc"],
    ),
    (
        "an unknown instruction",
        "",
        "FROM python:3.11 AS code\nCOPPY app.py /app/\n",
        ["config", "show"],
        2,
        ["Dockerfile:2: unknown instruction 'COPPY'"],
    ),
    (
        "COPY without a destination",
        "",
        "FROM python:3.11 AS code\nCOPY app.py\n",
        ["config", "show"],
        2,
        ["Dockerfile:2: COPY needs at least one source and a destination"],
    ),
    (
        "duplicate stage names",
        "",
        "FROM python:3.11 AS code\nFROM python:3.11 AS code\n",
        ["config", "show"],
        2,
        ["Dockerfile:2: stage name 'code' is already used by the stage at line 1"],
    ),
]


@pytest.mark.parametrize(
    ("name", "config", "dockerfile", "command", "code", "fragments"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_bad_input(
    tmp_path: Path,
    name: str,
    config: str,
    dockerfile: str,
    command: list[str],
    code: int,
    fragments: list[str],
) -> None:
    repo = _repo(tmp_path, config, dockerfile)
    proc = cli(*command, cwd=repo.path)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


def test_not_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(GOOD_DOCKERFILE)
    proc = cli("detect", cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{tmp_path} is not inside a git repository" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", ["--base", "--head"])
def test_unknown_revision(tmp_path: Path, option: str) -> None:
    repo = _repo(tmp_path, "")
    proc = cli("detect", option, "no-such-branch", cwd=repo.path)
    assert proc.returncode == 2, proc.stderr
    assert f"{option} no-such-branch: no such" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_config_file_named_explicitly(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "")
    proc = cli("--config", "nope.yaml", "detect", cwd=repo.path)
    assert proc.returncode == 2
    assert "nope.yaml: no such file" in proc.stderr


def test_missing_dockerfile_at_head(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "dockerfile: docker/Dockerfile\n")
    proc = cli("detect", cwd=repo.path)
    assert proc.returncode == 2
    assert "no Dockerfile at docker/Dockerfile" in proc.stderr


def test_broken_environment_is_exit_3(tmp_path: Path) -> None:
    """git missing from PATH is the machine's fault, not the input's: exit 3."""
    repo = _repo(tmp_path, "")
    proc = cli("detect", cwd=repo.path, env={"PATH": str(tmp_path / "empty-bin")})
    assert proc.returncode == 3, proc.stderr
    assert "`git` is not installed or not on PATH" in proc.stderr


def test_github_format_outside_github(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "")
    proc = cli("detect", "--format", "github", cwd=repo.path)
    assert proc.returncode == 2
    assert "GITHUB_OUTPUT is not set" in proc.stderr


def test_bad_build_arg_is_a_usage_error(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "")
    proc = cli("detect", "--build-arg", "NOEQUALS", cwd=repo.path)
    assert proc.returncode == 2
    assert "is not NAME=VALUE" in proc.stderr


CRASH = """\
import sys
import pipeline_kit.commands.detect as detect

def broken(options, out):
    raise {error}("a bug the tests planted")

detect.run = broken
from pipeline_kit.cli import main
main(["detect"])
"""


@pytest.mark.parametrize("error", ["RuntimeError", "FileExistsError", "KeyError"])
@pytest.mark.parametrize("debug", [False, True])
def test_a_crash_is_an_internal_error_exit_3_never_a_verdict(
    tmp_path: Path, error: str, debug: bool
) -> None:
    """An unexpected exception anywhere below the CLI (here a command replaced by one that
    raises) exits 3 with one line saying it is the kit's bug and where the traceback went;
    the traceback is printed in full only under PIPELINE_KIT_DEBUG."""
    import subprocess
    import sys

    repo = _repo(tmp_path, "image: registry.example.com/a\n")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PIPELINE_KIT_DEBUG": "1" if debug else ""}
    result = subprocess.run(
        [sys.executable, "-c", CRASH.format(error=error)],
        cwd=repo.path, env=cli_env(env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    log = tmp_path / "cache" / "pipeline-kit" / "crash.log"
    assert f"pipeline-kit: internal error: {error}: " in result.stderr
    assert "a bug in pipeline-kit, not in the change" in result.stderr
    assert str(log) in result.stderr
    assert "a bug the tests planted" in log.read_text() and "Traceback" in log.read_text()
    assert ("Traceback (most recent call last)" in result.stderr) is debug


def test_an_output_path_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    """``lint --output Dockerfile/x.json``: a file where a directory must be is exit 2 naming
    the path (it was a FileExistsError traceback, exit 1)."""
    repo = _repo(tmp_path, "image: registry.example.com/a\n")
    result = cli("lint", "--output", "Dockerfile/x.json", cwd=repo.path)
    assert result.returncode == 2, result.stderr
    assert "Dockerfile/x.json: cannot write it" in result.stderr
    assert "Traceback" not in result.stderr
