"""Dependency installs in a RUN: pip and its cousins, lock-file managers, conda, npm."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from pipeline_kit.dockerfile.stages import Instruction
from pipeline_kit.lint.shell import commands, operands, program, run_script, simple

# Managers that install from a lock file: run again after the code is copied, they only add
# the project itself, because the dependencies are already in place from the earlier run.
LOCKED_MANAGERS = frozenset(("poetry", "uv", "pdm", "pipenv"))

_PIP = re.compile(r"^pip(?:\d+(?:\.\d+)*)?$")
_PYTHON = re.compile(r"^python(?:\d+(?:\.\d+)*)?$")
_PIP_VALUE_OPTIONS = frozenset(
    (
        "-i --index-url --extra-index-url -f --find-links -t --target --prefix "
        "--root --platform --python-version --implementation --abi --upgrade-strategy "
        "--progress-bar --cache-dir --src --no-binary --only-binary --config-settings -C "
        "--global-option --log --proxy --retries --timeout --exists-action --cert "
        "--client-cert --python -p --report --root-user-action --trusted-host --index "
        "--default-index --index-strategy"
    ).split()
)
_NAMES_PACKAGES = frozenset(("npm", "pnpm"))
_PROJECT_ONLY_FLAGS = frozenset(("--no-deps", "--only-root"))
_EXTRAS = re.compile(r"\[[^\]]*\]$")
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tgz")
_MANAGERS: dict[tuple[str, ...], str] = {
    ("poetry", "install"): "poetry",
    ("uv", "sync"): "uv",
    ("pdm", "install"): "pdm",
    ("pdm", "sync"): "pdm",
    ("pipenv", "install"): "pipenv",
    ("pipenv", "sync"): "pipenv",
    ("npm", "ci"): "npm",
    ("npm", "install"): "npm",
    ("npm", "i"): "npm",
    ("yarn", "install"): "yarn",
    ("pnpm", "install"): "pnpm",
    **{
        (conda, *sub): "conda"
        for conda in ("conda", "mamba", "micromamba")
        for sub in (("install",), ("env", "create"), ("env", "update"), ("create",))
    },
}


# Installer and build tooling, not the service's dependencies: `pip install -U pip uv` is
# routine, and so is `pip install -U pip build` before a stage builds the project's wheel
# (the build backend it runs is the one pyproject.toml names).
TOOLING = frozenset(("pip", "setuptools", "wheel", "uv", "build"))


@dataclass(frozen=True)
class Install:
    tool: str  # "pip", "poetry", "uv", "conda", "npm" ...
    text: str  # the command as written, for messages
    project_only: bool  # installs the project without its dependencies
    requirement_files: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()  # requirement specifiers named on the command line
    local: tuple[str, ...] = ()  # local paths and editables (".", "./pkg", "-e .", ".[gpu]")
    constraints: tuple[str, ...] = ()  # -c files: versions they pin hold for the whole install
    cwd: str | None = None  # where a `cd` earlier in the RUN moved; None: the WORKDIR

    @property
    def projects(self) -> tuple[str, ...]:
        """The local project directories it installs (not wheels, archives or URLs)."""
        return tuple(p for p in self.local if is_local(p) and not p.endswith(_ARCHIVES))

    @property
    def tooling_only(self) -> bool:
        """Whether it only installs or upgrades the installers themselves."""
        return (
            self.tool == "pip"
            and bool(self.packages)
            and not (self.requirement_files or self.local)
            and all(_requirement_name(p) in TOOLING for p in self.packages)
        )


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", spec, maxsplit=1)[0].lower()


def installs(ins: Instruction) -> Iterator[Install]:
    """The dependency installs a RUN performs, in order, each with the directory an earlier
    ``cd`` of the same RUN moved to."""
    cwd: str | None = None
    for words in commands(run_script(ins)):
        words = simple(words)
        if program(words) == "cd":
            cwd = (operands(words) or ["~"])[0]
            continue
        found = install_of(words)
        if found is not None:
            yield found if cwd is None else replace(found, cwd=cwd)


def install_of(words: list[str]) -> Install | None:
    text = " ".join(words)
    pip_args = _pip_install_args(words)
    if pip_args is not None:
        return _pip_install(pip_args, text)
    name = program(words)
    args = operands(words)
    flags = set(words)
    for key, tool in _MANAGERS.items():
        if key[0] == name and tuple(args[: len(key) - 1]) == key[1:]:
            # `npm install express` adds a package; a bare `npm install` installs the project
            named = tuple(args[len(key) - 1 :]) if tool in _NAMES_PACKAGES else ()
            return Install(
                tool, text, project_only=bool(flags & _PROJECT_ONLY_FLAGS), packages=named
            )
    return None


def is_local(spec: str) -> bool:
    spec = _EXTRAS.sub("", spec.strip())  # ".[gpu,server]" is the project in "." with extras
    return spec in (".", "..") or spec.startswith(("./", "../", "/", "~")) or spec.endswith("/")


def _pip_install_args(words: list[str]) -> list[str] | None:
    """What follows ``install`` in pip, pip3, python -m pip or uv pip; None for other commands."""
    name = program(words)
    if _PIP.match(name):
        rest = words[1:]
    elif _PYTHON.match(name) and "-m" in words[1:3]:
        at = words.index("-m")
        if not _PIP.match(words[at + 1] if at + 1 < len(words) else ""):
            return None
        rest = words[at + 2 :]
    elif name == "uv" and words[1:2] == ["pip"]:
        rest = words[2:]
    else:
        return None
    sub = next((i for i, w in enumerate(rest) if not w.startswith("-")), None)
    if sub is None or rest[sub] != "install":
        return None
    return rest[sub + 1 :]


def _pip_install(args: list[str], text: str) -> Install | None:
    files: list[str] = []
    packages: list[str] = []
    local: list[str] = []
    constraints: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        value = args[i + 1] if i + 1 < len(args) else ""
        if word in ("-r", "--requirement"):
            files.append(value)
            i += 1
        elif word.startswith("--requirement="):
            files.append(word.partition("=")[2])
        elif word.startswith("-r") and not word.startswith("--"):
            files.append(word[2:])
        elif word in ("-c", "--constraint"):
            constraints.append(value)
            i += 1
        elif word.startswith("--constraint="):
            constraints.append(word.partition("=")[2])
        elif word.startswith("-c") and not word.startswith("--"):
            constraints.append(word[2:])
        elif word in ("-e", "--editable"):
            local.append(value)
            i += 1
        elif word in _PIP_VALUE_OPTIONS:
            i += 1
        elif not word.startswith("-"):
            # pip reads a word with a slash as a path (a wheel glob, a directory), not a name
            if is_local(word) or word.endswith(_ARCHIVES) or ("/" in word and "://" not in word):
                local.append(word)
            else:
                packages.append(word)
        i += 1
    if not (files or packages or local):
        return None  # `pip install --upgrade` alone installs nothing
    return Install(
        "pip",
        text,
        # --no-deps with requirement files or names still installs those: only a local
        # project installed alone is "the project without its dependencies"
        project_only="--no-deps" in args and not files and not packages,
        requirement_files=tuple(files),
        packages=tuple(packages),
        local=tuple(local),
        constraints=tuple(constraints),
    )
