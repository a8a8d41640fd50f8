"""The files a COPY, ADD or bind mount takes from the build context on disk.

Lint reads the working tree, not a commit: it answers "what would ``docker build`` send now".
Only the sources the stages name are walked, and a directory .dockerignore excludes is not
entered unless an exception pattern could bring something inside it back, so a context
holding 14 GB of ignored weights costs one ``excluded()`` call, not a walk of the weights.
Symlinks are followed only while they stay inside the context; what lies beyond is not
read (a builder would refuse it too).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline_kit.adapters.checkout import LeavesRoot, on_disk
from pipeline_kit.dockerfile.context_tree import go_glob, join
from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.stages import GLOB_CHARS


@dataclass(frozen=True)
class ContextFile:
    path: str  # slash-separated, relative to the context root
    size: int


@dataclass(frozen=True)
class Taken:
    """What one source path takes, after .dockerignore."""

    files: tuple[ContextFile, ...]
    named: frozenset[str]  # files the source names itself, not found inside a directory
    directories: tuple[str, ...]  # directories the source names (the context root is ".")


class ContextFiles:
    def __init__(self, root: Path, ignore: DockerIgnore) -> None:
        self.root = root
        self.ignore = ignore
        self._exceptions = DockerIgnore(tuple(p for p in ignore.patterns if p.exception))
        self._taken: dict[str, Taken] = {}

    def taken(self, source: str) -> Taken:
        cached = self._taken.get(source)
        if cached is None:
            cached = self._take(source)
            self._taken[source] = cached
        return cached

    def _take(self, source: str) -> Taken:
        files: dict[str, ContextFile] = {}
        named: set[str] = set()
        directories: list[str] = []
        for path in self._matches(source):
            full = self.disk(path)
            if full is None:
                continue
            if full.is_dir():
                directories.append(path)
                if path == "." or not self.ignore.excluded(path) or self._reachable(path):
                    for found in self._walk(path):
                        files.setdefault(found.path, found)
            elif not self.ignore.excluded(path):
                try:
                    size = full.stat().st_size
                except OSError:
                    continue
                files.setdefault(path, ContextFile(path, size))
                named.add(path)
        ordered = tuple(sorted(files.values(), key=lambda f: f.path))
        return Taken(ordered, frozenset(named), tuple(directories))

    def disk(self, path: str) -> Path | None:
        """Where ``path`` is on disk, symlinks followed inside the context (None: it leaves)."""
        if path == ".":
            return self.root
        try:
            return on_disk(self.root, path)
        except LeavesRoot:
            return None

    def _reachable(self, directory: str) -> bool:
        """Whether an exception pattern could re-include something below ``directory``."""
        return bool(self._exceptions) and self._exceptions.may_touch(directory)

    def _matches(self, source: str) -> list[str]:
        """Paths on disk a source names, before .dockerignore: literal parts, then globs."""
        if source == ".":
            return ["."]
        current = ["."]
        for part in source.split("/"):
            found: list[str] = []
            for parent in current:
                directory = self.disk(parent)
                if directory is None:
                    continue
                if any(ch in GLOB_CHARS for ch in part):
                    try:
                        names = sorted(os.listdir(directory))
                    except OSError:
                        continue
                    pattern = go_glob(part)
                    found += [join(parent, n) for n in names if fnmatch.fnmatchcase(n, pattern)]
                elif os.path.lexists(directory / part):
                    found.append(join(parent, part))
            current = found
        return current

    def _walk(self, top: str) -> list[ContextFile]:
        out: list[ContextFile] = []
        # (directory, whether some pattern may reach it): untouched subtrees skip the matching
        start = self.disk(top)
        if start is None:
            return out
        pending = [(top, str(start), self.ignore.may_touch(top))]
        while pending:
            directory, disk, touched = pending.pop()
            try:
                entries = list(os.scandir(disk))
            except OSError:
                continue
            for entry in entries:
                path = join(directory, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    if not touched:
                        pending.append((path, entry.path, False))
                    elif not self.ignore.excluded(path) or self._reachable(path):
                        pending.append((path, entry.path, self.ignore.may_touch(path)))
                elif not (touched and self.ignore.excluded(path)):
                    try:
                        size = entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
                    out.append(ContextFile(path, size))
        return out
