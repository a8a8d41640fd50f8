"""PK003 and PK004: the deps layer should change only when the dependencies do, and then
to versions someone chose.

Dependencies installed after the code is copied are reinstalled on every code change, which
is what turns a one-line fix into a 30-minute build; unpinned ones make two builds of the
same commit differ.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path

from pipeline_kit.dockerfile.context_tree import join
from pipeline_kit.dockerfile.stages import ContextSource, Stage
from pipeline_kit.lint.installs import LOCKED_MANAGERS, Install, installs, is_local
from pipeline_kit.lint.model import Hit, LintInput

MANIFESTS = frozenset(
    (
        "pyproject.toml",
        "setup.cfg",
        "poetry.lock",
        "uv.lock",
        "pdm.lock",
        "Pipfile",
        "Pipfile.lock",
        "environment.yml",
        "environment.yaml",
        "conda-lock.yml",
        "package.json",
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
    )
)
MANIFEST_PATTERNS = ("requirements*.txt", "requirements*.in", "requirements*.lock", "constraints*")
LOCK_FILES = frozenset(("poetry.lock", "uv.lock", "pdm.lock", "Pipfile.lock"))
LOCK_PATTERNS = ("requirements*.lock",)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_EXACT = re.compile(r"===?\s*([^,;\s]+)")
_COMMENT = re.compile(r"(?:^|\s)#.*$")


def is_manifest(path: str) -> bool:
    name = posixpath.basename(path)
    if name in MANIFESTS or any(fnmatch.fnmatchcase(name, p) for p in MANIFEST_PATTERNS):
        return True
    # requirements/base.txt, requirements/gpu.in: a directory of requirement files
    return posixpath.basename(posixpath.dirname(path)) == "requirements"


def is_pinned(spec: str) -> bool:
    """Whether a requirement specifier names exactly one release (or one artifact)."""
    spec = spec.split(";", 1)[0].strip()  # environment markers may hold '==' of their own
    if "$" in spec or _URL.match(spec) or is_local(spec) or spec.startswith("git+"):
        return True  # a variable cannot be judged; a URL or a file names one artifact
    name, at, ref = spec.partition("@")
    if at and name.strip() and ("://" in ref or ref.strip().startswith("file:")):
        return True
    exact = _EXACT.search(spec)
    return exact is not None and "*" not in exact.group(1)


def code_before_deps(lint: LintInput) -> Iterator[Hit]:
    reported: set[int] = set()
    for stage in lint.stages:
        code_copy: ContextSource | None = None
        installed_before: set[str] = set()
        for ancestor in lint.chain(stage):
            code = {s.line: s for s in ancestor.sources if _copies_code(lint, s)}
            for ins in ancestor.instructions:
                if ins.cmd in ("COPY", "ADD") and ins.line in code and code_copy is None:
                    code_copy = code[ins.line]
                if ins.cmd != "RUN":
                    continue
                for install in installs(ins):
                    if code_copy is None:
                        installed_before.add(install.tool)
                    elif not _adds_project_only(install, installed_before):
                        if code_copy.line not in reported:
                            reported.add(code_copy.line)
                            yield _code_first(lint, code_copy, ins.line, install)
                        code_copy = None


def _adds_project_only(install: Install, installed_before: set[str]) -> bool:
    return install.project_only or (
        install.tool in LOCKED_MANAGERS and install.tool in installed_before
    )


def _copies_code(lint: LintInput, source: ContextSource) -> bool:
    if source.via == "RUN --mount":
        return False  # a bind mount leaves no layer behind to invalidate
    taken = lint.files.taken(source.path)
    return bool(taken.directories) and any(not is_manifest(f.path) for f in taken.files)


def _code_first(lint: LintInput, copy: ContextSource, run_line: int, install: Install) -> Hit:
    what = "the whole context" if copy.path == "." else f"{copy.path}/"
    return Hit(
        lint.dockerfile,
        copy.line,
        f"{copy.via} of {what} at line {copy.line} comes before the dependency install at "
        f"line {run_line} (`{_short(install.text)}`), so every code change reinstalls the "
        "dependencies.",
    )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unpinned_dependencies(lint: LintInput) -> Iterator[Hit]:
    yield from _unpinned_requirement_files(lint)
    yield from _unpinned_pip_packages(lint)
    yield from _projects_without_lock(lint)


def _unpinned_requirement_files(lint: LintInput) -> Iterator[Hit]:
    referenced = {
        posixpath.basename(path)
        for stage in lint.stages
        for ins in stage.instructions
        if ins.cmd == "RUN"
        for install in installs(ins)
        for path in install.requirement_files
    }
    checked: set[str] = set()
    for stage in lint.stages:
        for source in stage.sources:
            taken = lint.files.taken(source.path)
            for found in taken.files:
                name = posixpath.basename(found.path)
                direct = found.path in taken.named and _is_requirements_name(name)
                if found.path in checked or not (direct or name in referenced):
                    continue
                checked.add(found.path)
                yield from _unpinned_lines(lint.context_file(found.path), lint, source)


def _is_requirements_name(name: str) -> bool:
    if fnmatch.fnmatchcase(name, "requirements*.txt"):
        return True
    return name.endswith(".in") and name != "MANIFEST.in"


def _unpinned_lines(path: Path | None, lint: LintInput, source: ContextSource) -> Iterator[Hit]:
    if path is None or not path.is_file():
        return  # beyond the context, or not a file the image could take
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    where = f"{lint.display(lint.dockerfile)}:{source.line}"
    for number, line in _logical_lines(text):
        spec = _COMMENT.sub("", line).strip()
        if not spec or spec.startswith("-") or "--hash" in spec:
            continue  # options and nested files; a hash pins the artifact itself
        requirement = spec.split(" --", 1)[0].strip()
        if not is_pinned(requirement):
            yield Hit(
                path,
                number,
                f"'{requirement}' is not pinned to one version; the image takes this file "
                f"({source.via} at {where}), so two builds may install different releases.",
                fix=f"Pin it with == (e.g. {_name(requirement)}==X.Y.Z), or generate the file "
                "with pip-compile or `uv pip compile`.",
            )


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines joined at trailing backslashes, each with the number of its first line."""
    start = 0
    parts: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        yield start, " ".join(parts)
        parts = []
    if parts:
        yield start, " ".join(parts)


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0] or requirement


def _unpinned_pip_packages(lint: LintInput) -> Iterator[Hit]:
    for stage in lint.stages:
        for ins in stage.instructions:
            if ins.cmd != "RUN":
                continue
            loose = [p for i in installs(ins) if i.tool == "pip" for p in i.packages]
            loose = [p for p in loose if not is_pinned(p)]
            if loose:
                shown = ", ".join(loose)
                yield Hit(
                    lint.dockerfile,
                    ins.line,
                    f"pip install of {shown} without an exact version: each build installs "
                    "whatever is newest that day.",
                    fix=f"Pin each package ({_name(loose[0])}==X.Y.Z) or install from a pinned "
                    "requirements file.",
                )


def _projects_without_lock(lint: LintInput) -> Iterator[Hit]:
    for stage in lint.stages:
        chain = lint.chain(stage)
        if _takes_lock(lint, chain):
            continue
        install = _project_install(lint, stage)
        if install is None:
            continue
        for source in stage.sources:
            if _takes_pyproject(lint, source):
                yield Hit(
                    lint.dockerfile,
                    source.line,
                    f"pyproject.toml is installed (`{_short(install.text)}`) without a lock "
                    f"file in the stage: {source.via} at line {source.line} takes no "
                    "poetry.lock, uv.lock or pdm.lock, so each build resolves versions anew.",
                    fix="Commit the lock file and copy it with pyproject.toml (or install from "
                    "a pinned requirements file).",
                )


def _takes_pyproject(lint: LintInput, source: ContextSource) -> bool:
    taken = lint.files.taken(source.path)
    tops = {join(d, "pyproject.toml") for d in taken.directories}
    return any(
        posixpath.basename(f.path) == "pyproject.toml" and (f.path in taken.named or f.path in tops)
        for f in taken.files
    )


def _takes_lock(lint: LintInput, chain: list[Stage]) -> bool:
    for stage in chain:
        for source in stage.sources:
            for found in lint.files.taken(source.path).files:
                name = posixpath.basename(found.path)
                if name in LOCK_FILES or any(fnmatch.fnmatchcase(name, p) for p in LOCK_PATTERNS):
                    return True
    return False


def _project_install(lint: LintInput, stage: Stage) -> Install | None:
    """An install in ``stage`` or a stage built on it that reads pyproject.toml."""
    for later in lint.stages:
        if stage.index not in {s.index for s in lint.chain(later)}:
            continue
        for ins in later.instructions:
            if ins.cmd != "RUN":
                continue
            for install in installs(ins):
                if install.tool in LOCKED_MANAGERS or (install.tool == "pip" and install.local):
                    return install
    return None
