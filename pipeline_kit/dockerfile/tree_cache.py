"""Filtered tree ids kept between calls, so a call costs what changed, not what is there.

The id of a directory after .dockerignore depends only on its git tree id, its path (rules
may be anchored) and the rules: git ids name content, so an entry never goes stale. A
directory unchanged since the last call (the same tree id) is then one dictionary lookup,
however many files lie below it. The entries of one set of rules are lines of one file under
``$XDG_CACHE_HOME/pipeline-kit/filtered-trees/`` (``~/.cache`` without it): read once per
call, appended to once per source that filtered something new, started afresh past
``MAX_BYTES``. A line that is not whole is skipped; a cache that cannot be read or written
only costs time.

The file is believed as written, so a CI job does not read it unless
``PIPELINE_KIT_TREE_CACHE=1`` says the runner's cache is the user's own: on a runner that
jobs of untrusted pull requests share, one that wrote a false id could change the content
key of a protected branch's build, and make it retag an image of other content. Each call
still filters an unchanged subtree once for both revisions.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pipeline_kit.dockerfile.dockerignore import DockerIgnore

FORMAT = "pipeline-kit/filtered-tree/v1"
MAX_BYTES = 8 << 20  # about 70,000 entries
_LINE = re.compile(r"^([0-9a-f]{40}) ([0-9a-f]{40}(?:[0-9a-f]{24})?)$")


def cache_root(environ: Mapping[str, str]) -> Path | None:
    """The kit's cache directory for filtered trees, or None when there is no home."""
    base = environ.get("XDG_CACHE_HOME") or (
        os.path.join(environ["HOME"], ".cache") if environ.get("HOME") else None
    )
    return None if base is None else Path(base) / "pipeline-kit" / "filtered-trees"


class FilteredTreeStore:
    """Filtered ids under one set of ignore rules, on disk."""

    def __init__(self, root: Path, ignore: DockerIgnore) -> None:
        rules = "\n".join(("!" if p.exception else "") + p.text for p in ignore.patterns)
        self.rules = hashlib.sha256(f"{FORMAT}\n{rules}".encode()).hexdigest()
        self.root = root
        self.file = root / f"{self.rules[:32]}.ids"
        self._entries: dict[str, str] | None = None
        self._pending: dict[str, str] = {}

    def _key(self, path: str, oid: str) -> str:
        text = f"{self.rules}\0{path}\0{oid}".encode("utf-8", "surrogateescape")
        return hashlib.sha256(text).hexdigest()[:40]

    def _load(self) -> dict[str, str]:
        if self._entries is None:
            self._entries = {}
            try:
                with open(self.file, encoding="ascii", errors="replace") as lines:
                    for line in lines:
                        match = _LINE.match(line.rstrip("\n"))
                        if match:
                            self._entries[match[1]] = match[2]
            except OSError:
                pass
        return self._entries

    def get(self, path: str, oid: str) -> str | None:
        found = self._load().get(self._key(path, oid))
        # An id of another length is not this repository's: compute it again.
        return found if found is not None and len(found) == len(oid) else None

    def put(self, path: str, oid: str, filtered: str) -> None:
        key = self._key(path, oid)
        self._load()[key] = filtered
        self._pending[key] = filtered

    def flush(self) -> None:
        """Append what ``put`` added since the last flush, in one write."""
        if not self._pending:
            return
        data = "".join(f"{k} {v}\n" for k, v in self._pending.items()).encode("ascii")
        self._pending.clear()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            try:
                if os.stat(self.file).st_size > MAX_BYTES:
                    flags |= os.O_TRUNC  # start afresh rather than grow without end
            except FileNotFoundError:
                pass
            fd = os.open(self.file, flags, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError:
            pass  # an unwritable cache only costs time


# Set by GitHub Actions, GitLab CI and most other CI systems in every job.
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI")
OPT_IN = "PIPELINE_KIT_TREE_CACHE"


def store_for(ignore: DockerIgnore, environ: Mapping[str, str]) -> FilteredTreeStore | None:
    """The store for these rules (None without rules to filter by, without a home, or in a CI
    job that did not opt in with ``PIPELINE_KIT_TREE_CACHE=1``)."""
    root = cache_root(environ)
    if root is None or not ignore:
        return None
    in_ci = any(environ.get(name, "").lower() in ("true", "1") for name in CI_VARIABLES)
    if in_ci and environ.get(OPT_IN) != "1":
        return None
    return FilteredTreeStore(root, ignore)
