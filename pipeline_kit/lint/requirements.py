"""Reading what a pip install reads: requirement files with their -r and -c includes, and the
dependencies a pyproject.toml declares.

Includes are followed inside the build context only, through ``ContextFiles.disk`` (symlinks
resolved inside the checkout); an include that leaves the context, or a file that cannot be
read, is skipped rather than guessed at.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

_COMMENT = re.compile(r"(?:^|\s)#.*$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_INCLUDES = {"-r": "r", "--requirement": "r", "-c": "c", "--constraint": "c"}
_POETRY_EXACT = re.compile(r"^(?:==?)?\s*\d[\w.+!-]*$")  # Poetry reads a bare "1.2.3" as ==

Disk = Callable[[str], Path | None]  # a context path to the file on disk (None: it leaves)


@dataclass(frozen=True)
class Requirement:
    path: str  # the context path of the file it is in
    line: int
    spec: str  # the requirement as written, without options and comments
    include: tuple[tuple[str, int], ...]  # the -r lines that led to its file, outermost first


@dataclass
class RequirementSet:
    """The requirements a set of files asks for, and the names their constraints pin."""

    requirements: list[Requirement] = field(default_factory=list)
    pinned_names: set[str] = field(default_factory=set)  # pinned by a -c file
    files: list[str] = field(default_factory=list)  # every file read, includes too


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    found = _NAME.match(spec)
    return canonical(found.group(1)) if found else ""


def read_requirements(
    disk: Disk,
    files: list[str],
    constraints: list[str],
    is_pinned: Callable[[str], bool],
) -> RequirementSet:
    """What ``pip install -r FILE... -c FILE...`` asks for, includes followed."""
    out = RequirementSet()
    for path in constraints:
        _read(disk, path, out, is_pinned, (), as_constraint=True)
    for path in files:
        _read(disk, path, out, is_pinned, (), as_constraint=False)
    return out


def _read(
    disk: Disk,
    path: str,
    out: RequirementSet,
    is_pinned: Callable[[str], bool],
    include: tuple[tuple[str, int], ...],
    *,
    as_constraint: bool,
) -> None:
    if path in out.files:
        return  # read once: includes may form a cycle, or meet again
    text = _text(disk(path))
    if text is None:
        return
    out.files.append(path)
    for number, line in logical_lines(text):
        spec = _COMMENT.sub("", line).strip()
        if not spec:
            continue
        option = _include(spec)
        if option is not None:
            kind, target = option
            nested = _beside(path, target)
            if nested is not None:
                _read(
                    disk,
                    nested,
                    out,
                    is_pinned,
                    (*include, (path, number)),
                    as_constraint=as_constraint or kind == "c",
                )
            continue
        if spec.startswith("-"):
            continue  # --index-url, --find-links, -e .: options and local projects
        if "--hash" in spec:
            spec = spec.split(" --", 1)[0].strip()
            if as_constraint:
                out.pinned_names.add(requirement_name(spec))
            continue  # a hash names the artifact itself
        spec = spec.split(" --", 1)[0].strip()
        if as_constraint:
            if is_pinned(spec):
                out.pinned_names.add(requirement_name(spec))
        else:
            out.requirements.append(Requirement(path, number, spec, include))


def _include(spec: str) -> tuple[str, str] | None:
    """``-r base.txt``, ``-rbase.txt``, ``--constraint=c.txt``: (kind, file)."""
    head, _, rest = spec.partition(" ")
    if head in _INCLUDES:
        return _INCLUDES[head], rest.strip()
    name, eq, value = head.partition("=")
    if eq and name in _INCLUDES:
        return _INCLUDES[name], value
    for short in ("-r", "-c"):
        if head.startswith(short) and not head.startswith("--") and len(head) > 2:
            return _INCLUDES[short], spec[2:].strip()
    return None


def _beside(path: str, target: str) -> str | None:
    """An include's context path: pip reads it relative to the including file."""
    if not target or target.startswith("/") or "://" in target or "$" in target:
        return None  # an absolute path is in the image, not the context; URLs are not files
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if joined == ".." or joined.startswith("../"):
        return None  # outside the build context
    return joined


def _text(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
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


def project_dependencies(path: Path | None, extras: set[str]) -> list[str] | None:
    """The dependencies a pyproject.toml declares for these extras (None: unknown, as with
    ``dynamic`` dependencies or a file that does not parse)."""
    text = _text(path)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    project = data.get("project")
    if isinstance(project, dict):
        if "dependencies" in project.get("dynamic", []):
            return None
        found = [str(d) for d in project.get("dependencies", [])]
        optional = project.get("optional-dependencies", {})
        if isinstance(optional, dict):
            for extra in extras:
                found += [str(d) for d in optional.get(extra, [])]
        return found
    poetry = data.get("tool", {}).get("poetry", {})
    if isinstance(poetry, dict) and isinstance(poetry.get("dependencies"), dict):
        return [
            _poetry_spec(name, value)
            for name, value in poetry["dependencies"].items()
            if name.lower() != "python"
        ]
    return []


def _poetry_spec(name: str, value: object) -> str:
    """A Poetry constraint as a requirement pip would read (``x==1.2`` when it is exact)."""
    if isinstance(value, dict):
        if any(key in value for key in ("path", "url", "git", "file")):
            return f"{name} @ file:{value.get('path', '')}"  # one artifact
        value = value.get("version", "*")
    version = str(value).strip()
    if _POETRY_EXACT.match(version):
        return f"{name}=={version.lstrip('=')}"
    return f"{name} {version}"  # ^1.2, ~1.2, >=1,<2, *: a range
