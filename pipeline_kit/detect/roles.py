"""What an instruction does for the image: base (OS, CUDA, system packages), deps (packages of a
language, and the files their installs read), or code (the application's own files).

Judged from the instruction's text alone: the package managers it runs, the files it copies,
and whether a stage it copies or mounts from is built from the application's own files (a
compiled builder of the application is code; kernels and wheels built from recipes are deps).
Instructions that say nothing about it (ENV, WORKDIR, a plain RUN) have no role of their own.
"""

from __future__ import annotations

import fnmatch
import re

from pipeline_kit.dockerfile.stages import Instruction, Stage, StageGraph

BASE, DEPS, CODE = 0, 1, 2
ROLE_NAMES = ("base", "deps", "code")

# Files a dependency install reads: manifests and lock files of every packaging tool.
DEPENDENCY_FILES = (
    "requirements*.txt",
    "requirements*.in",
    "*requirements.txt",
    "constraints*.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "*.lock",
    "Pipfile",
    "Cargo.toml",
    "rust-toolchain",
    "rust-toolchain.toml",
    "package.json",
    "package-lock.json",
    "pnpm-lock.yaml",
    "go.mod",
    "go.sum",
    "Gemfile",
    "environment*.yml",
    "environment*.yaml",
    "conda*.yml",
    "conda*.yaml",
    "*.whl",
)
DEPENDENCY_DIRS = ("requirements", "wheels")
# Files that say how to build or install something, not what the application is.
RECIPE_FILES = ("Makefile*", "*.mk", "*.sh", "*.patch")

_SYSTEM = re.compile(
    r"\b(?:apt-get|apt|apk|yum|dnf|microdnf|tdnf|zypper)\b[^;&|\n]*?\b(?:install|add)\b"
    r"|\bpacman\s+-S"
)
_PACKAGES = re.compile(
    r"\b(?:"
    r"pip[\d.]*\s+install|uv\s+(?:pip\s+install|sync|add)|poetry\s+(?:install|add)"
    r"|pipenv\s+(?:install|sync)|pdm\s+(?:install|sync)"
    r"|(?:conda|mamba|micromamba)\s+(?:install|create|env\s+(?:create|update))"
    r"|npm\s+(?:install|ci|i)|yarn\s+install|pnpm\s+(?:install|i)"
    r"|cargo\s+(?:build|install|fetch|chef\s+cook)|go\s+(?:mod\s+download|build|install)"
    r"|bundle\s+install|gem\s+install|composer\s+install"
    r")\b"
)
_PIP_INSTALL = re.compile(r"\bpip[\d.]*\s+install\b(?P<rest>[^;&|\n]*)")
_VALUE_FLAGS = frozenset(
    "-r --requirement -c --constraint -i --index-url --extra-index-url -f --find-links -t "
    "--target --prefix --root --trusted-host --platform --python-version --implementation "
    "--abi --only-binary --no-binary -C --config-settings --python --cache-dir --src "
    "--upgrade-strategy --index-strategy --extra -p".split()
)
METADATA = frozenset(
    "ARG ENV WORKDIR LABEL USER SHELL EXPOSE STOPSIGNAL HEALTHCHECK CMD ENTRYPOINT VOLUME "
    "ONBUILD MAINTAINER".split()
)


def installs_local_project(command: str) -> bool:
    """Whether a pip (or uv pip) install in ``command`` installs a path: the project itself."""
    for match in _PIP_INSTALL.finditer(command):
        skip = False
        for raw in match.group("rest").split():
            token = raw.strip("'\"")
            if skip:
                skip = False
            elif token in ("-e", "--editable") or token.startswith(("--editable=", "-e.")):
                return True
            elif token in _VALUE_FLAGS:
                skip = True
            elif token.startswith("-") or "://" in token or token.startswith(("git+", "$")):
                continue
            elif token.endswith((".whl", ".tar.gz", ".zip")):
                continue  # an artifact: its role is where it comes from
            elif token.startswith((".", "/", "~")) or "/" in token:
                return True
    return False


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def path_role(path: str) -> int | None:
    """DEPS for a manifest or lock file, None for a build recipe, CODE for anything else."""
    parts = path.rstrip("/").split("/")
    if _matches(path, DEPENDENCY_FILES) or any(part in DEPENDENCY_DIRS for part in parts):
        return DEPS
    if _matches(path, RECIPE_FILES):
        return None
    return CODE


# Files a dependency install needs besides the manifests, not what the application does.
_SKELETON_FILES = ("__init__.py", "py.typed", "README*", "LICENSE*")


def _is_skeleton(path: str) -> bool:
    return _matches(path, _SKELETON_FILES)


def _is_single_file(path: str) -> bool:
    """Whether a COPY source names one file (``build_backend.py``), not a directory or a
    pattern: judged from its name, which has a suffix."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return not path.endswith("/") and not any(c in name for c in "*?[") and "." in name.lstrip(".")


class Roles:
    """The role of each instruction of a graph's stages (computed on demand)."""

    def __init__(self, graph: StageGraph) -> None:
        self.graph = graph
        self._built_from_code: dict[int, bool] = {}

    def built_from_code(self, index: int) -> bool:
        """Whether a stage, or a stage it builds on, takes the application's own files."""
        if index not in self._built_from_code:
            self._built_from_code[index] = False  # stages form no loop (checked at parse)
            stage = self.graph.stages[index]
            own = any(path_role(source.path) == CODE for source in stage.sources)
            self._built_from_code[index] = own or any(
                self.built_from_code(dep) for dep in stage.depends_on()
            )
        return self._built_from_code[index]

    def _code_copied_before(self, stage: Stage, ins: Instruction) -> bool:
        """Whether the application's own files are in the stage by ``ins``: an earlier COPY
        or ADD takes them, or ``ins`` mounts them."""
        if any(path_role(s.path) == CODE for s in stage.sources if s.line == ins.line):
            return True
        return any(
            earlier.cmd in ("COPY", "ADD") and self.of(stage, earlier, False) == CODE
            for earlier in stage.instructions
            if earlier.line < ins.line
        )

    def of(self, stage: Stage, ins: Instruction, first_of_chain: bool) -> int | None:
        if ins.cmd == "FROM":
            return BASE if first_of_chain else None
        if ins.cmd in METADATA:
            return None
        refs = [ref.stage for ref in stage.stage_refs if ref.line == ins.line]
        if refs:
            return CODE if any(self.built_from_code(ref) for ref in refs) else DEPS
        if ins.cmd == "RUN":
            command = " ".join((*ins.args, *ins.heredocs))
            if installs_local_project(command):
                if "--no-deps" not in command and not self._code_copied_before(stage, ins):
                    return DEPS  # from the project's skeleton: its dependencies, resolved
                return CODE
            if _PACKAGES.search(command):
                return DEPS
            if _SYSTEM.search(command):
                return BASE
            return None
        if ins.cmd in ("COPY", "ADD"):
            if ins.flag("from") is not None:
                return DEPS  # from an image: a tool or a prebuilt artifact
            paths = [s.path for s in stage.sources if s.line == ins.line]
            if paths and all(_is_skeleton(path) for path in paths):
                return None  # a package's bare bones, so that an install can find it
            roles = {path_role(path) for path in paths}
            if DEPS in roles and all(
                _is_single_file(path) for path in paths if path_role(path) == CODE
            ):
                return DEPS  # manifests with the files their install needs beside them
            if CODE in roles:
                return CODE
            return DEPS if DEPS in roles else None
        return None
