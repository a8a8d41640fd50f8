"""The build context of a Dockerfile, found as a new user's repository already says it.

First what the repository's own build files say where they build this Dockerfile: a compose
file (``build: {context, dockerfile}``), a Makefile or shell script (``docker build -f X CTX``),
a GitHub workflow (``docker/build-push-action`` ``with: {context, file}``). Failing those, the
folder where the Dockerfile's COPY/ADD sources exist: the Dockerfile's own folder, the
repository root and each folder between, the one where most sources match; ties go to the
Dockerfile's folder. Everything is read from the working tree, inside it only.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from pipeline_kit.dockerfile.context_tree import go_glob
from pipeline_kit.dockerfile.stages import StageGraph

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
MAKEFILES = ("Makefile", "makefile", "GNUmakefile")
SCRIPT_DIRS = ("", "scripts", "bin", "build", "ci", "docker", ".ci")
MAX_BUILD_FILE_BYTES = 1_000_000
_BUILD = re.compile(r"\b(?:docker|podman)\s+(?:buildx\s+)?build\b")
_DOCKERFILE_OPTIONS = ("-f", "--file")
# Options of `docker build` that take a value as the next word.
_VALUED = {
    "-t", "--tag", "--build-arg", "--target", "--platform", "--label", "--cache-from",
    "--cache-to", "--secret", "--ssh", "--output", "-o", "--network", "--progress",
    "--build-context", "--iidfile", "--metadata-file", "--builder", "--shm-size", "--ulimit",
    "--add-host", "--attest", "--sbom", "--provenance", "--annotation", "--allow",
    "--cgroup-parent", "--memory", "-m", "--cpu-shares", "--isolation", "--load-from",
}  # fmt: skip


class FoundContext(NamedTuple):
    path: str  # repository-relative, "." for the root
    origin: str  # where it came from, for the person reading init's output


def find_context(root: Path, dockerfile: str, graph: StageGraph) -> FoundContext:
    """The build context of ``dockerfile`` (repository-relative) in the checkout at ``root``."""
    for found in _declared(root, dockerfile):
        if _is_dir(root, found.path):
            return found
    return _by_sources(root, dockerfile, graph)


# -- what the repository's build files say -------------------------------------------------


def _declared(root: Path, dockerfile: str) -> Iterator[FoundContext]:
    folders = _folders_up(posixpath.dirname(dockerfile))
    for folder in folders:
        for name in COMPOSE_FILES:
            yield from _from_compose(root, _join(folder, name), dockerfile)
    for folder in folders:
        for name in MAKEFILES:
            yield from _from_script(root, _join(folder, name), folder, dockerfile)
    for folder in dict.fromkeys(SCRIPT_DIRS + tuple(folders)):
        for name in _listdir(root, folder):
            if name.endswith((".sh", ".mk", ".bash")):
                yield from _from_script(root, _join(folder, name), "", dockerfile)
    for name in _listdir(root, ".github/workflows"):
        if name.endswith((".yml", ".yaml")):
            yield from _from_workflow(root, f".github/workflows/{name}", dockerfile)


def _from_compose(root: Path, rel: str, dockerfile: str) -> Iterator[FoundContext]:
    document = _yaml(root, rel)
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict):
        return
    base = posixpath.dirname(rel)
    for name, service in services.items():
        build = service.get("build") if isinstance(service, dict) else None
        if isinstance(build, str):
            build = {"context": build}
        if not isinstance(build, dict) or not isinstance(build.get("context", "."), str):
            continue
        context = _normal(_join(base, str(build.get("context", "."))))
        file = build.get("dockerfile", "Dockerfile")
        if context is None or not isinstance(file, str) or "$" in context + file:
            continue
        if _normal(_join(context, file)) == dockerfile:
            yield FoundContext(context, f"{rel}: services.{name}.build")


def _from_script(root: Path, rel: str, cwd: str, dockerfile: str) -> Iterator[FoundContext]:
    text = _text(root, rel)
    if text is None:
        return
    lines = text.replace("\\\n", " ").splitlines()
    for number, line in enumerate(lines, start=1):
        match = _BUILD.search(line)
        if match is None:
            continue
        try:
            words = shlex.split(line[match.end() :], comments=True)
        except ValueError:
            continue
        file, context = _build_words(_until_command_end(words))
        if context is None or "$" in context or (file is not None and "$" in file):
            continue
        context_path = _normal(_join(cwd, context))
        if context_path is None:
            continue
        # `-f` is relative to where the command runs (docker build), not to the context.
        file_path = _normal(_join(cwd, file)) if file else _join(context_path, "Dockerfile")
        if file_path == dockerfile:
            yield FoundContext(context_path, f"{rel}:{number}: docker build")


def _until_command_end(words: list[str]) -> list[str]:
    for index, word in enumerate(words):
        if word in ("&&", "||", ";", "|") or word.endswith(";"):
            return words[:index] + ([word[:-1]] if word.endswith(";") and word != ";" else [])
    return words


def _build_words(words: list[str]) -> tuple[str | None, str | None]:
    """``(-f value, the context argument)`` of a ``docker build`` command's words."""
    file, positional = None, []
    skip = False
    for index, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word in _DOCKERFILE_OPTIONS and index + 1 < len(words):
            file, skip = words[index + 1], True
        elif word.startswith("--file="):
            file = word.partition("=")[2]
        elif word.startswith("-f") and len(word) > 2 and not word.startswith("--"):
            file = word[2:]
        elif word in _VALUED:
            skip = True
        elif not word.startswith("-"):
            positional.append(word)
    return file, positional[0] if len(positional) == 1 else None


def _from_workflow(root: Path, rel: str, dockerfile: str) -> Iterator[FoundContext]:
    document = _yaml(root, rel)
    jobs = document.get("jobs") if isinstance(document, dict) else None
    if not isinstance(jobs, dict):
        return
    for job_name, job in jobs.items():
        steps = job.get("steps") if isinstance(job, dict) else None
        for index, step in enumerate(steps if isinstance(steps, list) else []):
            uses = step.get("uses") if isinstance(step, dict) else None
            if not isinstance(uses, str) or not uses.startswith("docker/build-push-action"):
                continue
            with_ = step.get("with") or {}
            if not isinstance(with_, dict):
                continue
            context = str(with_.get("context", "."))
            if "${{" in context or "://" in context:
                continue
            context_path = _normal(context)
            file = with_.get("file")
            file_path = (
                _normal(str(file)) if file is not None else _join(context_path or ".", "Dockerfile")
            )
            if context_path is not None and file_path == dockerfile:
                yield FoundContext(context_path, f"{rel}: jobs.{job_name}.steps[{index}] (with)")


# -- where the sources are ----------------------------------------------------------------


def _by_sources(root: Path, dockerfile: str, graph: StageGraph) -> FoundContext:
    target = len(graph.stages) - 1
    sources = [s for i in graph.upstream(target) for s in graph.stages[i].sources]
    own = posixpath.dirname(dockerfile) or "."
    if not sources:
        return FoundContext(own, "the Dockerfile's folder (it takes nothing from a context)")
    best, best_score = own, -1
    for folder in _folders_up(posixpath.dirname(dockerfile)):
        score = sum(1 for s in sources if _source_exists(root, folder, s.path, dockerfile))
        if score > best_score:  # the first (closest to the Dockerfile) wins a tie
            best, best_score = folder or ".", score
    where = f"{best_score} of {len(sources)} COPY/ADD sources"
    if best_score == 0:
        return FoundContext(own, "the Dockerfile's folder (no COPY/ADD source found anywhere)")
    return FoundContext(best, f"{where} are there")


def _source_exists(root: Path, folder: str, pattern: str, dockerfile: str) -> bool:
    """Whether ``pattern`` names something in ``folder`` (no symlink followed)."""
    if pattern == ".":
        # The whole context: a folder holding only the Dockerfile is not one.
        mine = {posixpath.basename(dockerfile), ".dockerignore"}
        return any(n not in mine for n in _listdir(root, folder) if not n.startswith(".git"))
    current = [folder]
    for part in pattern.split("/"):
        nxt = []
        for directory in current:
            names = _listdir(root, directory)
            if any(ch in part for ch in "*?["):
                glob = go_glob(part)
                nxt += [_join(directory, n) for n in names if fnmatch.fnmatchcase(n, glob)]
            elif part in names:
                nxt.append(_join(directory, part))
        current = nxt
    return bool(current)


# -- reading the checkout -----------------------------------------------------------------


def _folders_up(folder: str) -> list[str]:
    """``folder``, then each parent up to the root ("")."""
    out = [folder]
    while folder:
        folder = posixpath.dirname(folder)
        out.append(folder)
    return out


def _join(folder: str, name: str) -> str:
    return name if folder in ("", ".") else f"{folder}/{name}"


def _normal(path: str) -> str | None:
    """``path`` cleaned, repository-relative ("." for the root); None when it leaves."""
    if path.startswith("/"):
        return None
    cleaned = posixpath.normpath(path)
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    return cleaned


def _real(root: Path, rel: str) -> Path | None:
    """``rel`` under ``root`` when no component of it is a symlink."""
    path = root
    for part in [p for p in rel.split("/") if p not in ("", ".")]:
        path = path / part
        if path.is_symlink():
            return None
    return path


def _listdir(root: Path, rel: str) -> list[str]:
    path = _real(root, rel)
    if path is None or not path.is_dir():
        return []
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _is_dir(root: Path, rel: str) -> bool:
    path = _real(root, rel)
    return path is not None and path.is_dir()


def _text(root: Path, rel: str) -> str | None:
    path = _real(root, rel)
    if path is None or not path.is_file():
        return None
    try:
        if path.stat().st_size > MAX_BUILD_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _yaml(root: Path, rel: str) -> Any:
    text = _text(root, rel)
    if text is None:
        return None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # not ours to judge: a broken file says nothing about the context
