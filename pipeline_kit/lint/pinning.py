"""PK004: the dependencies an install reads should name one version each.

Each install is judged on what it reads when it runs: the context files taken by the COPY
and ADD instructions before it in its stage chain, and the files its own RUN bind-mounts.
A requirements file is read with its -r and -c includes; the local project (``pip install
.``, ``poetry install``, ``uv sync``) is judged by its lock file or, for pip, by whether
something earlier pinned its dependencies.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline_kit.dockerfile.expand import expand
from pipeline_kit.dockerfile.stages import ContextSource, Instruction, Stage
from pipeline_kit.lint.dependencies import is_pinned
from pipeline_kit.lint.installs import LOCKED_MANAGERS, TOOLING, Install, installs
from pipeline_kit.lint.model import Hit, LintInput
from pipeline_kit.lint.requirements import (
    Requirement,
    project_dependencies,
    read_requirements,
    requirement_name,
)
from pipeline_kit.lint.shell import commands, operands, program, run_script, simple

# The lock file each manager installs from; without it, the manager resolves versions anew.
MANAGER_LOCKS = {
    "poetry": ("poetry.lock",),
    "uv": ("uv.lock",),
    "pdm": ("pdm.lock",),
    "pipenv": ("Pipfile.lock",),
}
MANAGER_MANIFESTS = {
    "poetry": "pyproject.toml",
    "uv": "pyproject.toml",
    "pdm": "pyproject.toml",
    "pipenv": "Pipfile",
}
JS_LOCKS = ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml")
_JS_MANAGERS = frozenset(("npm", "yarn", "pnpm"))
# Flags that make the manager refuse to run without its lock, or install from it only.
_LOCK_REQUIRED = frozenset(("--locked", "--frozen", "--deploy", "--frozen-lockfile", "--immutable"))
# Cargo commands that resolve the dependency graph: without Cargo.lock, to the newest versions.
_CARGO_RESOLVES = frozenset(
    ("build", "b", "run", "r", "test", "t", "check", "c", "bench", "fetch", "install")
)
_EXTRAS = re.compile(r"\[([^\]]*)\]$")


@dataclass(frozen=True)
class _Context:
    """What an install can read: context path -> the COPY, ADD or mount that took it."""

    files: dict[str, ContextSource]

    def named(self, name: str) -> list[str]:
        return [p for p in self.files if posixpath.basename(p) == name]

    def find(self, path: str) -> list[str]:
        """The taken files a path in the image most likely is: same name, then the most
        trailing directories in common."""
        wanted = [p for p in posixpath.normpath(path).split("/") if p not in ("", ".")]
        if not wanted:
            return []
        scored: dict[str, int] = {}
        for candidate in self.named(wanted[-1]):
            parts = candidate.split("/")
            score = 0
            while score < min(len(parts), len(wanted)) and (
                parts[-1 - score] == wanted[-1 - score]
            ):
                score += 1
            scored[candidate] = score
        best = max(scored.values(), default=0)
        return sorted(p for p, s in scored.items() if s == best)


def unpinned_dependencies(lint: LintInput) -> Iterator[Hit]:
    reported: set[tuple[str, int, str]] = set()
    for stage in lint.stages:
        for hit in _stage_hits(lint, stage):
            key = (str(hit.path), hit.line, hit.message)
            if key not in reported:
                reported.add(key)
                yield hit


def _stage_hits(lint: LintInput, stage: Stage) -> Iterator[Hit]:
    """The hits of ``stage``'s own installs, with what its chain took before each."""
    taken: dict[str, ContextSource] = {}
    earlier: list[Install] = []
    cooked = False  # cargo chef cook writes the Cargo.lock its recipe carries
    for ancestor in lint.chain(stage):
        by_line: dict[int, list[ContextSource]] = {}
        for source in ancestor.sources:
            by_line.setdefault(source.line, []).append(source)
        scope = {**dict(ancestor.args), **dict(ancestor.env)}
        for ins in ancestor.instructions:
            sources = by_line.get(ins.line, [])
            if ins.cmd in ("COPY", "ADD"):
                for source in sources:
                    for found in lint.files.taken(source.path).files:
                        taken.setdefault(found.path, source)
                continue
            if ins.cmd != "RUN":
                continue
            mounted = dict(taken)
            for source in sources:  # bind mounts: read by this RUN only
                for found in lint.files.taken(source.path).files:
                    mounted[found.path] = source
            for install in installs(ins):
                if ancestor is stage:
                    context = _Context(mounted)
                    yield from _judge(lint, stage, ins, install, context, earlier, scope)
                earlier.append(install)
            if ancestor is stage:
                yield from _cargo_without_lock(lint, stage, ins, _Context(mounted), cooked)
            cooked = cooked or _cooks_recipe(ins)


def _judge(
    lint: LintInput,
    stage: Stage,
    ins: Instruction,
    install: Install,
    context: _Context,
    earlier: list[Install],
    scope: dict[str, str | None],
) -> Iterator[Hit]:
    if install.tool == "pip":
        constraints = _files(context, install.constraints, scope, install.cwd)
        files = _files(context, install.requirement_files, scope, install.cwd)
        read = read_requirements(lint.context_file, files, constraints, is_pinned)
        pinned_names = read.pinned_names
        yield from _requirement_hits(lint, stage, ins, context, read.requirements, pinned_names)
        yield from _loose_packages(lint, stage, ins, install, pinned_names)
        if install.projects and not install.project_only:
            locked = bool(files or constraints) or any(
                e.requirement_files or e.tool in LOCKED_MANAGERS for e in earlier
            )
            if not locked:
                yield from _unpinned_project(lint, stage, ins, install, context)
    elif install.tool in MANAGER_LOCKS:
        yield from _manager_without_lock(lint, stage, ins, install, context)
    elif install.tool in _JS_MANAGERS:
        yield from _js_without_lock(lint, stage, ins, install, context)


def _files(
    context: _Context, paths: tuple[str, ...], scope: dict[str, str | None], cwd: str | None
) -> list[str]:
    found: list[str] = []
    for path in paths:
        path = expand(path, scope)
        if cwd is not None and not path.startswith("/"):
            path = posixpath.join(cwd, path)
        for candidate in context.find(path):
            if candidate not in found:
                found.append(candidate)
    return found


def _requirement_hits(
    lint: LintInput,
    stage: Stage,
    ins: Instruction,
    context: _Context,
    requirements: list[Requirement],
    pinned_names: set[str],
) -> Iterator[Hit]:
    where = lint.display(lint.dockerfile)
    for requirement in requirements:
        if is_pinned(requirement.spec) or requirement_name(requirement.spec) in pinned_names:
            continue
        path = lint.context_file(requirement.path)
        if path is None:
            continue
        source = context.files.get(requirement.path)
        took = f" ({source.via} at {where}:{source.line})" if source is not None else ""
        through = "".join(
            f" through -r at {lint.display(_disk(lint, p))}:{n}" for p, n in requirement.include
        )
        yield Hit(
            path,
            requirement.line,
            f"'{requirement.spec}' is not pinned to one version; the image takes this file"
            f"{took} and the install at {where}:{ins.line} reads it{through}, so two builds "
            "may install different releases.",
            fix=f"Pin it with == (e.g. {_name(requirement.spec)}==X.Y.Z), or generate the file "
            "with pip-compile or `uv pip compile`.",
            stage=stage.index,
        )


def _disk(lint: LintInput, path: str) -> Path:
    return lint.context_file(path) or lint.context / path


def _loose_packages(
    lint: LintInput, stage: Stage, ins: Instruction, install: Install, pinned_names: set[str]
) -> Iterator[Hit]:
    loose = [
        p
        for p in install.packages
        if not is_pinned(p)
        and requirement_name(p) not in pinned_names
        and requirement_name(p) not in TOOLING
    ]
    if loose:
        yield Hit(
            lint.dockerfile,
            ins.line,
            f"pip install of {', '.join(loose)} without an exact version: each build installs "
            "whatever is newest that day.",
            fix=f"Pin each package ({_name(loose[0])}==X.Y.Z) or install from a pinned "
            "requirements file.",
            stage=stage.index,
        )


def _unpinned_project(
    lint: LintInput, stage: Stage, ins: Instruction, install: Install, context: _Context
) -> Iterator[Hit]:
    """``pip install .`` resolves the project's own dependencies; unpinned ones float."""
    manifests = _project_manifests(install, context)
    if not manifests:
        return  # the install reads no pyproject.toml the image has taken so far
    extras = {
        e.strip()
        for project in install.projects
        for m in [_EXTRAS.search(project)]
        if m
        for e in m.group(1).split(",")
    }
    loose: list[str] = []
    shown = ""
    for manifest in _closest(manifests):
        declared = project_dependencies(lint.context_file(manifest), extras)
        if declared is None:
            return  # dynamic dependencies: they come from somewhere this rule cannot read
        loose += [d for d in declared if not is_pinned(d)]
        source = context.files[manifest]
        shown = f"{manifest} ({source.via} at line {source.line})"
    if loose:
        names = ", ".join(f"'{d}'" for d in loose[:3])
        more = f" and {len(loose) - 3} more" if len(loose) > 3 else ""
        yield Hit(
            lint.dockerfile,
            ins.line,
            f"`{_short(install.text)}` resolves the dependencies of {shown} anew on each "
            f"build: {names}{more} name no single version, and nothing installed before it "
            "pins them (no requirements or lock-file install, no -c constraints).",
            fix="Install the pinned dependencies first (`pip install -r requirements.txt` "
            "exported from the lock, or `uv sync --locked`/`poetry install`), then the "
            "project with --no-deps.",
            stage=stage.index,
        )


def _project_manifests(install: Install, context: _Context) -> list[str]:
    """The pyproject.toml files of the projects the install names, among those taken."""
    manifests = context.named("pyproject.toml")
    if install.cwd is None:
        return manifests
    if install.cwd.startswith(("/", "~", "$")) or ".." in install.cwd.split("/"):
        return []  # somewhere in the image this rule cannot map to the context
    found: list[str] = []
    for project in install.projects:
        directory = posixpath.normpath(posixpath.join(install.cwd, _EXTRAS.sub("", project)))
        found += [
            m
            for m in manifests
            if m == f"{directory}/pyproject.toml" or m.endswith(f"/{directory}/pyproject.toml")
        ]
    return found


def _closest(manifests: list[str]) -> list[str]:
    """The project at the top: the shallowest pyproject.toml the install can read."""
    depth = min(m.count("/") for m in manifests)
    return [m for m in manifests if m.count("/") == depth][:1]


def _manager_without_lock(
    lint: LintInput, stage: Stage, ins: Instruction, install: Install, context: _Context
) -> Iterator[Hit]:
    if _LOCK_REQUIRED.intersection(install.text.split()):
        return  # the manager itself fails the build when the lock is missing or stale
    if any(context.named(lock) for lock in MANAGER_LOCKS[install.tool]):
        return
    manifest = MANAGER_MANIFESTS[install.tool]
    manifests = context.named(manifest)
    if not manifests:
        return  # what it reads comes from elsewhere (another stage, a download)
    source = context.files[_closest(manifests)[0]]
    lock = MANAGER_LOCKS[install.tool][0]
    yield Hit(
        lint.dockerfile,
        ins.line,
        f"`{_short(install.text)}` installs {manifest} ({source.via} at line {source.line}) "
        f"without {lock}: none is in the image before this RUN, so each build resolves "
        "versions anew.",
        fix=f"Commit {lock} and copy it with {manifest} before the install (or mount both "
        "with RUN --mount=type=bind).",
        stage=stage.index,
    )


def _js_without_lock(
    lint: LintInput, stage: Stage, ins: Instruction, install: Install, context: _Context
) -> Iterator[Hit]:
    words = install.text.split()
    if install.packages or words[1:2] == ["ci"] or _LOCK_REQUIRED.intersection(words):
        return  # adds named packages; or npm ci and frozen installs, which need the lock
    if any(context.named(lock) for lock in JS_LOCKS):
        return
    manifests = context.named("package.json")
    if not manifests:
        return
    source = context.files[_closest(manifests)[0]]
    yield Hit(
        lint.dockerfile,
        ins.line,
        f"`{_short(install.text)}` installs package.json ({source.via} at line {source.line}) "
        "without a lock file (package-lock.json, yarn.lock, pnpm-lock.yaml): each build "
        "resolves versions anew.",
        fix="Commit the lock file, copy it with package.json and install with `npm ci` (or "
        "`yarn install --frozen-lockfile`, `pnpm install --frozen-lockfile`).",
        stage=stage.index,
    )


def _cooks_recipe(ins: Instruction) -> bool:
    return any(
        program(words) == "cargo" and operands(words)[:2] == ["chef", "cook"]
        for words in map(simple, commands(run_script(ins)))
    )


def _cargo_without_lock(
    lint: LintInput, stage: Stage, ins: Instruction, context: _Context, cooked: bool
) -> Iterator[Hit]:
    manifests = context.named("Cargo.toml")
    if not manifests:
        return  # what cargo reads comes from elsewhere (a cargo-chef recipe, another stage)
    source = context.files[_closest(manifests)[0]]
    for words in commands(run_script(ins)):
        words = simple(words)
        if program(words) != "cargo" or _LOCK_REQUIRED.intersection(words):
            continue
        args = [a for a in operands(words) if not a.startswith("+")]  # +nightly: a toolchain
        if not args or args[0] not in _CARGO_RESOLVES:
            continue
        if args[0] == "install":
            if not any(w == "--path" or w.startswith("--path=") for w in words):
                continue  # a crate from a registry, not the project
            why = "cargo install ignores Cargo.lock unless --locked"
        elif cooked or context.named("Cargo.lock"):
            continue
        else:
            why = "no Cargo.lock is in the image before this RUN"
        yield Hit(
            lint.dockerfile,
            ins.line,
            f"`{_short(' '.join(words))}` resolves the crates of Cargo.toml ({source.via} at "
            f"line {source.line}) anew on each build: {why}.",
            fix="Commit Cargo.lock, copy it with Cargo.toml, and build with --locked.",
            stage=stage.index,
        )
        return


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0] or requirement


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
