"""What a stage takes from the build context at one revision, named by content.

A directory that no .dockerignore rule can reach is named by its git tree id, so its cost
does not grow with its size. Where rules do reach inside (``**/__pycache__`` reaches every
directory), the kit names it by the id git would give the filtered directory, so it depends
only on what the image takes, whatever the ignore rules exclude around it. That id is made
directory by directory from the ids of the directories below, each kept by (path, tree id):
a subtree unchanged between the two revisions is filtered once, and one unchanged since an
earlier call is read back from the kit's cache (tree_cache.py), so the cost follows what
changed, not what is there.

A symlink on a source's path is followed as builders follow it, inside the context only: the
name is that of what the path resolves to, so it changes when the target's content does.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import NamedTuple

from pipeline_kit.adapters.checkout import LeavesRoot, Node, resolve
from pipeline_kit.adapters.git import Git, TreeEntry, tree_object_id
from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.stages import ContextSource
from pipeline_kit.dockerfile.tree_cache import FilteredTreeStore

EMPTY = ""
STORE_MIN_ENTRIES = 64
SYMLINK_MODE = "120000"


class UnmatchedSource(NamedTuple):
    """A source without wildcards that takes nothing: BuildKit stops the build on it
    (``"/<path>": not found``), whether the path is missing or .dockerignore excludes it.
    A wildcard that matches nothing is not one: BuildKit copies nothing and goes on."""

    source: ContextSource
    excluded_by: int | None  # the .dockerignore line that excludes it; None: no such path


class SourceLeavesContext(LeavesRoot):
    """A COPY/ADD/mount source resolves outside the build context."""

    def __init__(self, source: ContextSource, reason: LeavesRoot) -> None:
        super().__init__(
            f"line {source.line}: {source.via} {source.path}: {reason.message}", hint=reason.hint
        )
        self.line = source.line


def join(parent: str, name: str) -> str:
    return name if parent in ("", ".") else f"{parent}/{name}"


def go_glob(pattern: str) -> str:
    """Go's ``filepath.Match`` class negation ``[^...]`` in fnmatch's spelling ``[!...]``."""
    return pattern.replace("[^", "[!")


@dataclass
class ContextSnapshot:
    """The build context at one revision: a git tree plus the .dockerignore that applies."""

    git: Git
    tree: str | None  # None when the context directory does not exist at this revision
    ignore: DockerIgnore
    filtered_cache: dict[tuple[str, str], str] = field(default_factory=dict)  # (path, oid)
    store: FilteredTreeStore | None = None  # filtered ids kept between calls
    _listed: int = 0  # tree entries read while filtering, to size what is worth storing
    _trees: dict[str, dict[str, TreeEntry] | None] = field(default_factory=dict)  # by path
    # Sources that take nothing, in the order met (``material`` records them).
    unmatched: dict[ContextSource, UnmatchedSource] = field(default_factory=dict)

    def material(self, source: ContextSource) -> list[str]:
        """Sorted ``"<mode> <oid> <path>"`` lines naming everything ``source`` takes.

        A path reached through a symlink is named with what it resolves to (``-> target``);
        .dockerignore applies to both, as BuildKit sends neither an excluded link nor an
        excluded target.
        """
        if self.tree is None:
            return ["missing context"]
        try:
            matches = self._matches(source.path)
        except LeavesRoot as exc:
            raise SourceLeavesContext(source, exc) from None
        lines = []
        excluded_by: int | None = None
        for written, path, entry in matches:
            via = f" -> {path}" if path != written else ""
            if via and self.ignore.excluded(written):
                excluded_by = self.ignore.excluding_line(written)
                continue
            if entry.is_tree:
                if self.ignore.excluded(path) and not self._has_reincluded(path, entry.oid):
                    excluded_by = self.ignore.excluding_line(path)
                    continue
                lines.append(f"{entry.mode} {self.filtered_tree(path, entry.oid)} {written}{via}")
            elif not self.ignore.excluded(path):
                lines.append(f"{entry.mode} {entry.oid} {written}{via}")
            else:
                excluded_by = self.ignore.excluding_line(path)
        if not lines and not source.has_glob:
            self.unmatched.setdefault(source, UnmatchedSource(source, excluded_by))
        return sorted(lines) or [f"nothing matches {source.path}"]

    def _matches(self, pattern: str) -> list[tuple[str, str, TreeEntry]]:
        """``(path as written, path resolved, entry)`` for what the source names: literal
        components walked, directories listed at wildcards, symlinks followed inside."""
        assert self.tree is not None
        root = TreeEntry("40000", ".", self.tree)
        if pattern == ".":
            return [(".", ".", root)]
        current = [("", "", root)]
        for part in pattern.split("/"):
            nxt = []
            for written, resolved, entry in current:
                if not entry.is_tree:
                    continue
                children = self._children(resolved)
                if any(ch in part for ch in "*?["):
                    glob = go_glob(part)
                    names = [name for name in children if fnmatch.fnmatchcase(name, glob)]
                else:
                    names = [part] if part in children else []
                for name in names:
                    target = resolve(join(resolved, name), self._lookup, root_name=_CONTEXT)
                    found = self._entry(target)
                    if found is not None:
                        nxt.append((join(written, name), target or ".", found))
            current = nxt
        return current

    def _children(self, path: str) -> dict[str, TreeEntry]:
        """The entries of the directory at a resolved ``path`` ("" for the root), by name."""
        if path in self._trees:
            return self._trees[path] or {}
        entries: dict[str, TreeEntry] | None = None
        if not path:
            assert self.tree is not None
            entries = {e.name: e for e in self.git.read_tree(self.tree)}
        else:
            parent, _, name = path.rpartition("/")
            entry = self._children(parent).get(name)
            if entry is not None and entry.is_tree:
                entries = {e.name: e for e in self.git.read_tree(entry.oid)}
        self._trees[path] = entries
        return entries or {}

    def _entry(self, path: str) -> TreeEntry | None:
        if not path:
            assert self.tree is not None
            return TreeEntry("40000", ".", self.tree)
        parent, _, name = path.rpartition("/")
        return self._children(parent).get(name)

    def _lookup(self, path: str) -> Node:
        entry = self._entry(path)
        if entry is None:
            return Node("missing")
        if entry.mode == SYMLINK_MODE:
            found = self.git.read_object(entry.oid)
            return Node("symlink", found[2].decode("utf-8", "surrogateescape") if found else "")
        return Node("dir" if entry.is_tree else "file")

    def filtered_tree(self, path: str, oid: str) -> str:
        """The git tree id of directory ``path`` after .dockerignore (``oid`` when untouched).

        Computed directory by directory from the ids of the directories below, each kept
        by (path, tree id): a subtree unchanged between two revisions, or since the last
        call (``store``), is not listed again.
        """
        if not self.ignore.may_touch(path):
            return oid
        self._prefetch(path, oid)
        found = self._filtered(path, oid)
        if self.store is not None:
            self.store.flush()
        return found

    def _prefetch(self, path: str, oid: str) -> None:
        """Read, a level at a time, the trees filtering ``path`` will list: one exchange with
        git per level instead of one per directory. Ids already known are not read."""
        level = [(path, oid)] if self._known(path, oid) is None else []
        while level:
            self.git.prefetch_trees([tree for _, tree in level])
            nxt = []
            for parent, tree in level:
                for entry in self.git.read_tree(tree):
                    child = join(parent, entry.name)
                    # Excluded directories are read too: rarely in git, and cheaper than
                    # matching every directory twice.
                    if not entry.is_tree or not self.ignore.may_touch(child):
                        continue
                    if self._known(child, entry.oid) is None:
                        nxt.append((child, entry.oid))
            level = nxt

    def _known(self, path: str, oid: str) -> str | None:
        """The filtered id of ``path`` at ``oid`` if this call or the store has it."""
        key = (path, oid)
        found = self.filtered_cache.get(key)
        if found is None and self.store is not None:
            found = self.store.get(path, oid)
            if found is not None:
                self.filtered_cache[key] = found
        return found

    def _filtered(self, path: str, oid: str) -> str:
        """An excluded ``path`` keeps only what exceptions bring back (the empty tree when
        nothing is): every entry below is matched with its full path."""
        key = (path, oid)
        found = self._known(path, oid)
        if found is None:
            before = self._listed
            found = self._filter(path, oid)
            # A small directory costs less to list again than to keep: store the larger ones.
            if self.store is not None and self._listed - before >= STORE_MIN_ENTRIES:
                self.store.put(path, oid, found)
        self.filtered_cache[key] = found
        return found

    def _filter(self, path: str, oid: str) -> str:
        entries = self.git.read_tree(oid)
        self._listed += len(entries)
        children = [join(path, entry.name) for entry in entries]
        candidates = set(self.ignore.matching_paths("\n".join(children)))
        exceptions = any(p.exception for p in self.ignore.patterns)
        empty = _EMPTY_TREE.get(len(oid), "")
        kept: list[TreeEntry] = []
        same = True
        for entry, child in zip(entries, children, strict=True):
            excluded = child in candidates and self.ignore.excluded(child)
            if entry.is_tree and self.ignore.may_touch(child):
                if excluded and not exceptions:
                    same = False
                    continue
                sub = self._filtered(child, entry.oid)
                if excluded and sub == empty:
                    same = False
                    continue  # an excluded directory nothing inside is brought back to
                same = same and sub == entry.oid
                kept.append(TreeEntry(entry.mode, entry.name, sub))
            elif excluded:
                same = False
            else:
                kept.append(entry)
        return oid if same else tree_object_id(kept, len(oid) // 2)

    def _has_reincluded(self, path: str, oid: str) -> bool:
        """Whether an excluded directory still holds paths an exception brings back."""
        if not any(p.exception for p in self.ignore.patterns):
            return False
        return self.filtered_tree(path, oid) != _EMPTY_TREE.get(len(oid), "")


_CONTEXT = "the build context"

_EMPTY_TREE = {
    40: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    64: "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
}


def source_takes(source: ContextSource, path: str) -> bool:
    """Whether a context-relative ``path`` falls under ``source`` (before .dockerignore)."""
    if source.path == ".":
        return True
    if not source.has_glob:
        return path == source.path or path.startswith(source.path + "/")
    parts = source.path.split("/")
    names = path.split("/")
    if len(names) < len(parts):
        return False
    return all(fnmatch.fnmatchcase(n, go_glob(p)) for n, p in zip(names, parts, strict=False))
