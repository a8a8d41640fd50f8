"""The GitHub action's step: its inputs, one pipeline-kit command, its step outputs.

``action.yml`` hands every input to ``action/run`` as a ``PK_*`` variable (never
through a shell), which installs the kit and runs this module. The inputs are read once into
an ``ActionInputs``; ``command_argv`` turns them into the CLI's arguments (a pure function,
tested as a table); ``run`` runs the CLI in this process with ``$GITHUB_OUTPUT`` pointed at a
private file and passes that file on only when it is complete, followed by ``exit-code``. A
failed command fails the step with the kit's exit code and its message as an error annotation.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pipeline_kit.errors import ExitCode, InputError


@dataclass(frozen=True)
class Command:
    """A command the action runs: its words on the command line and what it takes."""

    words: tuple[str, ...]
    revisions: tuple[str, ...] = ()  # which of the base/head inputs it takes
    github: bool = False  # takes --format github: step outputs, summary or annotations


COMMANDS: dict[str, Command] = {
    "detect": Command(("detect",), ("base", "head"), github=True),
    "build": Command(("build",), ("base", "head"), github=True),
    "merge": Command(("merge",), ("head",), github=True),
    "tags": Command(("tags",), ("head",), github=True),
    "promote": Command(("promote",), github=True),
    "verify": Command(("verify",)),
    "deploy": Command(("deploy",), github=True),
    "smoke": Command(("smoke",), github=True),
    "lint": Command(("lint",), github=True),
    "render": Command(("render", "kubernetes")),
    "preview up": Command(("preview", "up"), github=True),
    "preview run": Command(("preview", "run"), github=True),
    "preview down": Command(("preview", "down")),
    "preview status": Command(("preview", "status")),
    "preview gc": Command(("preview", "gc")),
    "cache-gc": Command(("cache", "gc")),
}
# The CLI's own spelling of a command is accepted too.
ALIASES = {"cache gc": "cache-gc", "render kubernetes": "render"}
EXIT_MEANINGS: dict[int, str] = {
    ExitCode.VERDICT: "a verdict against the change",
    ExitCode.USAGE: "usage or configuration error",
    ExitCode.INFRA: "infrastructure error, or an internal error of the kit",
    ExitCode.INTERRUPTED: "interrupted",
}


@dataclass(frozen=True)
class ActionInputs:
    command: str
    config: str = "pipeline-kit.yaml"  # empty: the kit's own lookup
    base: str = ""
    head: str = ""
    args: tuple[str, ...] = ()
    working_directory: str = "."
    registry: str = ""  # the host registry_username and registry_password are for
    registry_username: str = ""
    registry_password: str = ""
    github_token: str = ""

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ActionInputs:
        return cls(
            command=" ".join(env.get("PK_COMMAND", "").split()),
            config=env.get("PK_CONFIG", "").strip(),
            base=env.get("PK_BASE", "").strip(),
            head=env.get("PK_HEAD", "").strip(),
            args=split_args(env.get("PK_ARGS", "")),
            working_directory=env.get("PK_WORKING_DIRECTORY", "").strip() or ".",
            registry=env.get("PK_REGISTRY", "").strip(),
            registry_username=env.get("PK_REGISTRY_USERNAME", "").strip(),
            registry_password=env.get("PK_REGISTRY_PASSWORD", ""),
            github_token=env.get("PK_GITHUB_TOKEN", ""),
        )


def split_args(text: str) -> tuple[str, ...]:
    """One argument per line; surrounding whitespace dropped, blank lines skipped."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def resolve_command(name: str) -> Command:
    key = ALIASES.get(name, name)
    if key in COMMANDS:
        return COMMANDS[key]
    choices = ", ".join(COMMANDS)
    if not name:
        raise InputError("command: no command given.", hint=f"Choose one of: {choices}.")
    subcommands = [c for c in COMMANDS if c.startswith(f"{name} ")]
    if subcommands:
        raise InputError(
            f"command: '{name}' needs a subcommand.",
            hint=f"Choose one of: {', '.join(subcommands)}.",
        )
    raise InputError(
        f"command: '{name}' is not a command this action runs.", hint=f"Choose one of: {choices}."
    )


def command_argv(inputs: ActionInputs) -> list[str]:
    """The CLI arguments for ``inputs`` (without the program name)."""
    command = resolve_command(inputs.command)
    argv = ["--config", inputs.config] if inputs.config else []
    argv += command.words
    for name, value in (("base", inputs.base), ("head", inputs.head)):
        if not value:
            continue
        if name not in command.revisions:
            takers = [c for c, spec in COMMANDS.items() if name in spec.revisions]
            raise InputError(
                f"{name}: '{inputs.command}' takes no {name} revision.",
                hint=f"Leave {name} empty, or use it with {' or '.join(takers)}.",
            )
        argv += [f"--{name}", value]
    if command.github:
        # Before the args: a `--` there cannot turn it into an operand, and a --format
        # given in args still wins.
        argv += ["--format", "github"]
    return argv + list(inputs.args)


def credentials_environ(inputs: ActionInputs) -> dict[str, str]:
    """The variables the kit reads credentials from (``adapters.registry.credentials``)."""
    if inputs.registry_password and not inputs.registry_username:
        raise InputError(
            "registry-password is set but registry-username is empty.",
            hint="Give both, or neither (the kit then uses GITHUB_TOKEN for ghcr.io or a docker "
            "config).",
        )
    if inputs.registry_username and inputs.registry_password and not inputs.registry:
        raise InputError(
            "registry-username and registry-password are set but registry is empty: the kit "
            "sends them only to the registry they are for.",
            hint="Set registry to that registry's host (host or host:port, e.g. "
            "registry.example.com).",
        )
    env = {}
    if inputs.registry_username and inputs.registry_password:
        env["PIPELINE_KIT_REGISTRY"] = inputs.registry
        env["PIPELINE_KIT_REGISTRY_USER"] = inputs.registry_username
        env["PIPELINE_KIT_REGISTRY_PASSWORD"] = inputs.registry_password
    if inputs.github_token:
        env["GITHUB_TOKEN"] = inputs.github_token
    return env


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped as the runner expects."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


_HEREDOC = re.compile(r"^([^=<]+)<<(.+)$")
_PAIR = re.compile(r"^([^=]+)=(.*)$")


def complete_outputs(text: str) -> bool:
    """Whether ``text`` is whole ``$GITHUB_OUTPUT`` content: ``name=value`` lines and closed
    heredocs (a command killed while writing leaves neither half)."""
    lines = iter(text.splitlines())
    for line in lines:
        heredoc = _HEREDOC.match(line)
        if heredoc:
            if not any(inner == heredoc.group(2) for inner in lines):
                return False
        elif not _PAIR.match(line):
            return False
    return text == "" or text.endswith("\n")


def annotation(command: str, code: int, message: str | None) -> str:
    meaning = EXIT_MEANINGS.get(code, "failed")
    text = f"exit {code} ({meaning})"
    if message:
        text += f": {message}"
    return f"::error title={escape_property(f'pipeline-kit {command}')}::{escape_data(text)}"


def run(environ: MutableMapping[str, str], out: TextIO) -> int:
    """Run the action's command; returns the exit code for the step."""
    # The secrets leave PK_*: the kit gets them under the names it reads, and nothing else.
    secrets = {name: environ.pop(name, "") for name in ("PK_REGISTRY_PASSWORD", "PK_GITHUB_TOKEN")}
    for line in secrets["PK_REGISTRY_PASSWORD"].splitlines():
        if line.strip():
            out.write(f"::add-mask::{line}\n")
    out.flush()
    inputs = ActionInputs.from_environ({**environ, **secrets})
    outputs_path = environ.get("GITHUB_OUTPUT", "")
    try:
        argv = command_argv(inputs)
        environ.update(credentials_environ(inputs))
        workdir = Path(inputs.working_directory)
        if not workdir.is_dir():
            raise InputError(
                f"working-directory: {inputs.working_directory} is not a directory "
                f"(in {Path.cwd()}).",
                hint="Give a path relative to the workspace, and check out the repository first.",
            )
    except InputError as exc:
        out.write(annotation(inputs.command or "action", ExitCode.USAGE, str(exc)) + "\n")
        _append(outputs_path, f"exit-code={int(ExitCode.USAGE)}\n")
        return ExitCode.USAGE
    os.chdir(workdir)
    code, message = _invoke(argv, environ, outputs_path, out)
    if code != ExitCode.OK:
        out.write(annotation(inputs.command, code, message) + "\n")
    return code


def _invoke(
    argv: list[str], environ: MutableMapping[str, str], outputs_path: str, out: TextIO
) -> tuple[int, str | None]:
    """The CLI in this process, writing step outputs to a private file first."""
    from pipeline_kit.cli import invoke

    scratch = Path(environ.get("RUNNER_TEMP") or tempfile.gettempdir())
    fd, private = tempfile.mkstemp(prefix="pipeline-kit-outputs-", dir=scratch)
    os.close(fd)
    environ["GITHUB_OUTPUT"] = private
    try:
        out.flush()
        code, message = invoke(argv)
        sys.stdout.flush()
        text = Path(private).read_text(encoding="utf-8")
    finally:
        environ["GITHUB_OUTPUT"] = outputs_path
        Path(private).unlink(missing_ok=True)
    if not complete_outputs(text):
        out.write("::warning title=pipeline-kit::the command's step outputs were incomplete; "
                  "none are set\n")  # fmt: skip
        text = ""
    _append(outputs_path, f"{text}exit-code={int(code)}\n")
    return code, message


def _append(path: str, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)


def main() -> None:
    sys.exit(int(run(os.environ, sys.stdout)))


if __name__ == "__main__":
    main()
