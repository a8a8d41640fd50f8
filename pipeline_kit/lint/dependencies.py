"""PK003: the deps layer should change only when the dependencies do (PK004, that it then
installs versions someone chose, is in ``pinning``).

Dependencies installed after the code is copied are reinstalled on every code change, which
is what turns a one-line fix into a 30-minute build; unpinned ones make two builds of the
same commit differ.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterator

from pipeline_kit.dockerfile.stages import ContextSource
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
        "npm-shrinkwrap.json",
        "Cargo.toml",
        "Cargo.lock",
        "go.mod",
        "go.sum",
    )
)
MANIFEST_PATTERNS = ("requirements*.txt", "requirements*.in", "requirements*.lock", "constraints*")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_EXACT = re.compile(r"===?\s*([^,;\s]+)")


def is_manifest(path: str) -> bool:
    name = posixpath.basename(path)
    if name in MANIFESTS or any(fnmatch.fnmatchcase(name, p) for p in MANIFEST_PATTERNS):
        return True
    # requirements/base.txt, requirements/gpu/cuda.txt: a directory of requirement files
    return "requirements" in path.split("/")[:-1]


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


_PIP_REQUIREMENTS = "pip -r"  # a pip install of requirement files, as opposed to of names


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
                    if install.tooling_only:
                        continue  # `pip install -U pip` installs no dependency of the code
                    if code_copy is None:
                        installed_before.add(install.tool)
                        if install.requirement_files:
                            installed_before.add(_PIP_REQUIREMENTS)
                    elif not _adds_project_only(install, installed_before):
                        if code_copy.line not in reported:
                            reported.add(code_copy.line)
                            yield _code_first(lint, code_copy, ins.line, install)
                        code_copy = None


def _adds_project_only(install: Install, installed_before: set[str]) -> bool:
    """Whether an install after the code copy only adds the project: its dependencies came
    from a lock-file manager run or a requirements install before the copy."""
    if install.project_only:
        return True
    if install.tool in LOCKED_MANAGERS:
        return install.tool in installed_before
    local_only = install.tool == "pip" and bool(install.local) and not install.packages
    return local_only and not install.requirement_files and _PIP_REQUIREMENTS in installed_before


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
