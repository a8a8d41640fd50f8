"""The GitHub action's inputs -> the CLI's arguments, as a table; its outputs and its errors.

The action itself runs under act in tests/integration/ci/test_github_actions.py; here the pure
parts, and the command table checked against the CLI's own commands and options.
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import click
import pytest

from pipeline_kit import github_action
from pipeline_kit.cli import cli, invoke
from pipeline_kit.errors import InputError
from pipeline_kit.github_action import (
    COMMANDS,
    ActionInputs,
    command_argv,
    complete_outputs,
    credentials_environ,
    split_args,
)
from tests.support import REPO
from tests.support.ci_outputs import parse_github_outputs
from tests.support.gitrepo import GitRepo

ARGV_TABLE = [
    (ActionInputs("detect"), ["--config", "pipeline-kit.yaml", "detect", "--format", "github"]),
    (
        ActionInputs("build", base="abc123", head="def456", args=("--builder", "buildah")),
        ["--config", "pipeline-kit.yaml", "build", "--base", "abc123", "--head", "def456",
         "--format", "github", "--builder", "buildah"],
    ),
    (ActionInputs("tags", config="", head="HEAD"),
     ["tags", "--head", "HEAD", "--format", "github"]),
    (
        ActionInputs("promote", args=("reg/app@sha256:" + "a" * 64, "stable")),
        ["--config", "pipeline-kit.yaml", "promote", "--format", "github",
         "reg/app@sha256:" + "a" * 64, "stable"],
    ),
    (
        ActionInputs("preview run", config="ci/pk.yaml", args=("--image", "r/a@sha256:1")),
        ["--config", "ci/pk.yaml", "preview", "run", "--format", "github",
         "--image", "r/a@sha256:1"],
    ),
    (ActionInputs("preview down", args=("app-pr-7",)),
     ["--config", "pipeline-kit.yaml", "preview", "down", "app-pr-7"]),
    (ActionInputs("cache-gc"), ["--config", "pipeline-kit.yaml", "cache", "gc"]),
    (ActionInputs("cache gc"), ["--config", "pipeline-kit.yaml", "cache", "gc"]),
    (ActionInputs("render", args=("--image", "r/a@sha256:1")),
     ["--config", "pipeline-kit.yaml", "render", "kubernetes", "--image", "r/a@sha256:1"]),
    (ActionInputs("lint"), ["--config", "pipeline-kit.yaml", "lint", "--format", "github"]),
    (ActionInputs("deploy", args=("--image", "r/a@sha256:1")),
     ["--config", "pipeline-kit.yaml", "deploy", "--format", "github", "--image", "r/a@sha256:1"]),
    # an argument with spaces and shell syntax stays one argument, untouched
    (ActionInputs("smoke", config="", args=("--prompt", "it's $(rm -rf /) `x` a; b")),
     ["smoke", "--format", "github", "--prompt", "it's $(rm -rf /) `x` a; b"]),
]  # fmt: skip


@pytest.mark.parametrize(("inputs", "argv"), ARGV_TABLE)
def test_inputs_to_argv(inputs: ActionInputs, argv: list[str]) -> None:
    assert command_argv(inputs) == argv


BAD_INPUTS = [
    (ActionInputs("rollout"), "command: 'rollout' is not a command this action runs"),
    (ActionInputs("deploy", base="HEAD~1"), "base: 'deploy' takes no base revision"),
    (ActionInputs(""), "command: no command given"),
    (ActionInputs("preview"), "command: 'preview' needs a subcommand"),
    (ActionInputs("promote", base="HEAD~1"), "base: 'promote' takes no base revision"),
    (ActionInputs("tags", base="HEAD~1"), "Leave base empty, or use it with detect or build"),
]


@pytest.mark.parametrize(("inputs", "message"), BAD_INPUTS)
def test_bad_inputs_are_usage_errors(inputs: ActionInputs, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        command_argv(inputs)


def test_args_one_per_line() -> None:
    text = "--image\n  reg/app@sha256:1  \r\n\n--prompt\nShall I compare thee\n"
    assert split_args(text) == ("--image", "reg/app@sha256:1", "--prompt", "Shall I compare thee")
    assert split_args("") == ()


def test_inputs_read_once_from_the_environment() -> None:
    env = {
        "PK_COMMAND": "  preview   run ",
        "PK_CONFIG": "pipeline-kit.yaml",
        "PK_ARGS": "--image\nx@sha256:1\n",
        "PK_WORKING_DIRECTORY": "",
        "PK_REGISTRY": " registry.example.com ",
        "PK_REGISTRY_USERNAME": "bot",
        "PK_REGISTRY_PASSWORD": "s3cret",
    }
    inputs = ActionInputs.from_environ(env)
    assert inputs.command == "preview run"
    assert inputs.args == ("--image", "x@sha256:1")
    assert inputs.working_directory == "."
    assert credentials_environ(inputs) == {
        "PIPELINE_KIT_REGISTRY": "registry.example.com",
        "PIPELINE_KIT_REGISTRY_USER": "bot",
        "PIPELINE_KIT_REGISTRY_PASSWORD": "s3cret",
    }


def test_credentials_go_together() -> None:
    with pytest.raises(InputError, match="registry-username is empty"):
        credentials_environ(ActionInputs("build", registry_password="x"))
    assert credentials_environ(ActionInputs("build", github_token="t")) == {"GITHUB_TOKEN": "t"}
    assert credentials_environ(ActionInputs("build")) == {}


def _click_command(words: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for word in words:
        assert isinstance(command, click.Group), words
        command = command.commands[word]
    return command


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_table_matches_the_cli(name: str) -> None:
    """Every command the action runs exists, and takes the options the action passes it."""
    spec = COMMANDS[name]
    command = _click_command(spec.words)
    options = {opt: param for param in command.params for opt in param.opts}
    for revision in spec.revisions:
        assert f"--{revision}" in options, (name, revision)
    fmt = options.get("--format")
    takes_github = fmt is not None and "github" in getattr(fmt.type, "choices", ())
    assert spec.github == takes_github, name


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("", True),
        ("digest=sha256:1\ntags=a,b\n", True),
        ("json<<EOF_1\n{\n}\nEOF_1\nverdict=passed\n", True),
        ("json<<EOF_1\n{\n", False),  # killed inside a heredoc
        ("digest=sha256:1\ntags", False),  # killed mid-line
        ("digest=sha256:1", False),  # no final newline: the line may be cut
    ],
)
def test_complete_outputs(text: str, complete: bool) -> None:
    assert complete_outputs(text) is complete


def test_invoke_returns_the_message_main_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, message = invoke(["--config", str(tmp_path / "none.yaml"), "detect"])
    assert code == 2
    assert message is not None and "none.yaml: no such file" in message
    assert f"pipeline-kit: error: {message}" in capsys.readouterr().err
    code, message = invoke(["detect", "--bogus"])
    assert code == 2 and message is not None and "No such option '--bogus'" in message


def _run_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **inputs: str
) -> tuple[int, str, dict[str, str]]:
    """``github_action.run`` in this process, as the step would run it."""
    outputs = tmp_path / "github-output"
    outputs.write_text("")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))
    # Removed now, so what the action sets is removed again afterwards.
    for name in (
        *("GITHUB_ACTIONS", "GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_REF", "GITHUB_TOKEN"),
        *("PIPELINE_KIT_REGISTRY", "PIPELINE_KIT_REGISTRY_USER", "PIPELINE_KIT_REGISTRY_PASSWORD"),
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in inputs.items():
        monkeypatch.setenv(f"PK_{name.upper()}", value)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    code = github_action.run(os.environ, out)
    return code, out.getvalue(), parse_github_outputs(outputs.read_text())


def test_a_failing_command_sets_only_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, log, outputs = _run_action(tmp_path, monkeypatch, command="detect", config="nope.yaml")
    assert code == 2
    assert outputs == {"exit-code": "2"}
    assert "::error title=pipeline-kit detect::exit 2 (usage or configuration error): " in log
    assert "nope.yaml: no such file" in log


def test_a_password_is_masked_and_leaves_the_action_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = GitRepo.init(tmp_path / "repo")
    repo.commit({"Dockerfile": "FROM scratch AS base\nCOPY a /a\n", "a": "1\n"})
    repo.commit({"a": "2\n"})
    code, log, outputs = _run_action(
        tmp_path,
        monkeypatch,
        command="detect",
        config="",
        working_directory="repo",
        registry="registry.example.com",
        registry_username="bot",
        registry_password="first-line\nsecond-line",
    )
    assert code == 0, log
    assert log.startswith("::add-mask::first-line\n::add-mask::second-line\n")
    assert outputs["code-changed"] == "true" and outputs["exit-code"] == "0"
    assert "PK_REGISTRY_PASSWORD" not in os.environ
    assert os.environ["PIPELINE_KIT_REGISTRY_PASSWORD"] == "first-line\nsecond-line"
    assert os.environ["PIPELINE_KIT_REGISTRY"] == "registry.example.com"


ACTION_RUN = REPO / "action" / "run"


@pytest.mark.parametrize(
    ("python", "message"),
    [
        (
            "no-such-python3",
            "no-such-python3 is not on PATH: the action needs Python 3.10 or newer",
        ),
        ("old-python", "Python 3.8.10 is too old: the action needs Python 3.10 or newer"),
    ],
)
def test_action_run_names_a_missing_or_old_python(
    tmp_path: Path, python: str, message: str
) -> None:
    """action/run itself, before any install: a clear annotation and exit 3. The old
    interpreter is a stand-in script that answers as Python 3.8 does."""
    old = tmp_path / "old-python"
    old.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "Python 3.8.10"; exit 0; fi\nexit 1\n'
    )
    old.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "PK_PYTHON": python,
        "PK_COMMAND": "detect",
        "RUNNER_TEMP": str(tmp_path),
    }
    result = subprocess.run(
        ["bash", str(ACTION_RUN)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert result.stdout.startswith(f"::error title=pipeline-kit::{message}")
    assert not (tmp_path / "pipeline-kit").exists()  # nothing installed
