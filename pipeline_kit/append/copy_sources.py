"""What one COPY/ADD takes from the build context on disk, and where it puts it.

Docker's rules, as buildah 1.28 applies them (each measured): a directory source copies its
contents, not itself; a file goes into the destination when that ends in ``/`` (or is an
existing directory), else it becomes the destination; several sources need a destination
ending in ``/``; a relative destination is relative to the working directory; wildcards match
one path component each (Go's ``filepath.Match``); ``.dockerignore``d paths do not exist;
symlinks inside a directory are copied as symlinks, a symlink on a source's path is followed
(only while it stays inside the context: one that leaves it is refused, as buildah does);
modes come from the source (or ``--chmod``, for files and the directories below a copied
one), owners are ``--chown`` or root. ADD of a local archive would be unpacked: refused.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from pipeline_kit.adapters.checkout import LeavesRoot, disk_lookup, resolve
from pipeline_kit.append import CannotAppend
from pipeline_kit.append.steps import CopyStep
from pipeline_kit.dockerfile.context_tree import go_glob
from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.stages import GLOB_CHARS

# gzip, bzip2, xz and tar ("ustar" at offset 257): ADD would unpack these.
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


class Entry(NamedTuple):
    """One path a layer writes, as it will be in the image."""

    path: str  # relative to /, no trailing slash
    kind: str  # "dir", "file" or "symlink"
    mode: int  # permission bits, setuid/setgid/sticky included
    uid: int = 0
    gid: int = 0
    target: str = ""  # symlink target
    source: Path | None = None  # where a file's bytes are


class SourceItem(NamedTuple):
    context_path: str  # what the source resolves to, relative to the context ("." for the root)
    disk: Path  # where that is on disk
    is_dir: bool
    written: str  # the path as the instruction names it (a file keeps this name)


class CopyPlacement(NamedTuple):
    """Where the step writes: ``content`` overwrites; ``dest_dirs`` are made when missing."""

    content: tuple[Entry, ...]
    dest_dirs: tuple[str, ...]  # the destination directory and those above it, top first
    file_or_dir: tuple[str, str] | None  # (dest, name): a file goes to dest, or dest/name


def read_ignore(context: Path, dockerfile: Path) -> DockerIgnore:
    """The ignore rules buildah applies to ``context`` (refusing where builders disagree)."""
    if os.path.lexists(context / ".containerignore"):
        raise CannotAppend(".containerignore: buildah reads it instead of .dockerignore")
    specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if os.path.lexists(specific):
        raise CannotAppend(f"{specific.name}: BuildKit reads it, buildah does not")
    if not os.path.lexists(context / ".dockerignore"):
        return DockerIgnore.empty()
    path = _on_disk(context, ".dockerignore", ".dockerignore")
    if not path.is_file():
        raise CannotAppend(".dockerignore is not a regular file")
    return DockerIgnore.parse(path.read_text(encoding="utf-8", errors="replace"))


def resolve_sources(step: CopyStep, context: Path, ignore: DockerIgnore) -> list[SourceItem]:
    items: list[SourceItem] = []
    where = f"line {step.line}"
    for raw in step.sources:
        norm = posixpath.normpath("/" + raw).lstrip("/") or "."
        if any(ch in GLOB_CHARS for ch in norm):
            matched = [path for path in _glob(context, norm, where) if not ignore.excluded(path)]
            if not matched:
                raise CannotAppend(f"{where}: {raw} matches no file in the context")
            items += [_item(context, path, where, ignore) for path in matched]
        else:
            if norm != "." and ignore.excluded(norm):
                raise CannotAppend(f"{where}: {raw} is excluded by .dockerignore")
            items.append(_item(context, norm, where, ignore))
    if step.key.instruction.cmd == "ADD":
        for item in items:
            if not item.is_dir and _is_archive(item.disk):
                raise CannotAppend(f"{where}: ADD of an archive ({item.context_path}) unpacks it")
    return items


def _on_disk(context: Path, rel: str, where: str) -> Path:
    """Where ``rel`` is on disk, symlinks followed inside the context (refused outside)."""
    try:
        resolved = resolve(rel, disk_lookup(context), root_name="the build context")
    except LeavesRoot as exc:
        raise CannotAppend(f"{where}: {exc.message.rstrip('.')}") from None
    return context / resolved if resolved else context


def _glob(context: Path, pattern: str, where: str) -> list[str]:
    current = [""]
    for part in pattern.split("/"):
        found: list[str] = []
        for parent in current:
            directory = _on_disk(context, parent, where)
            if not directory.is_dir():
                continue
            if any(ch in GLOB_CHARS for ch in part):
                glob = go_glob(part)
                names = sorted(n for n in os.listdir(directory) if fnmatch.fnmatchcase(n, glob))
            else:
                child = directory / part
                names = [part] if child.exists() or child.is_symlink() else []
            found += [f"{parent}/{name}" if parent else name for name in names]
        current = found
    return current


def _item(context: Path, rel: str, where: str, ignore: DockerIgnore) -> SourceItem:
    disk = _on_disk(context, "" if rel == "." else rel, where)
    try:
        info = os.lstat(disk)
    except (FileNotFoundError, NotADirectoryError):
        raise CannotAppend(f"{where}: {rel} is not in the build context") from None
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        raise CannotAppend(f"{where}: {rel} is not a regular file or directory")
    resolved = disk.relative_to(context).as_posix()
    if resolved != rel and resolved != "." and ignore.excluded(resolved):
        raise CannotAppend(f"{where}: {rel} leads to {resolved}, excluded by .dockerignore")
    return SourceItem(resolved, disk, stat.S_ISDIR(info.st_mode), rel)


def _is_archive(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(512)
    return head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar"


def place(step: CopyStep, items: list[SourceItem], ignore: DockerIgnore) -> CopyPlacement:
    """The entries of the step and the directories they need (before parents are known)."""
    dest = step.dest if step.dest.startswith("/") else posixpath.join(step.workdir, step.dest)
    into_dir = step.dest.endswith(("/", "/.")) or step.dest in (".", "..") or len(items) > 1
    base = posixpath.normpath(dest).lstrip("/")
    base = "" if base == "." else base
    uid, gid = step.owner or (0, 0)
    content: list[Entry] = []
    file_or_dir = None
    if len(items) > 1 and not step.dest.endswith(("/", "/.")) and step.dest not in (".", ".."):
        raise CannotAppend(
            f"line {step.line}: several sources need a destination ending in / (got {step.dest})"
        )
    for item in items:
        if item.is_dir:
            into_dir = True
            content += _walk(item, base, uid, gid, step.chmod, ignore)
        else:
            mode = step.chmod if step.chmod is not None else stat.S_IMODE(item.disk.stat().st_mode)
            name = posixpath.basename(item.written)
            if into_dir or not base:
                path = posixpath.join(base, name) if base else name
            else:
                path = base
                file_or_dir = (base, name)
            content.append(Entry(path, "file", mode, uid, gid, source=item.disk))
    if file_or_dir is not None and len(items) == 1:
        dest_dirs = _above(posixpath.dirname(base))
    else:
        file_or_dir = None
        dest_dirs = _above(base)
    return CopyPlacement(tuple(content), tuple(dest_dirs), file_or_dir)


def _above(path: str) -> list[str]:
    """``path`` and every directory above it (the root left out), top first."""
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _walk(
    item: SourceItem, base: str, uid: int, gid: int, chmod: int | None, ignore: DockerIgnore
) -> list[Entry]:
    entries: list[Entry] = []
    prefix = "" if item.context_path == "." else item.context_path + "/"
    # Without exceptions (!pattern) nothing below an excluded directory can come back.
    prune = not any(p.exception for p in ignore.patterns)
    for rel, disk, info in _tree(item.disk, "", prefix, ignore if prune else None):
        context_rel = prefix + rel
        if ignore.excluded(context_rel):
            continue
        target = posixpath.join(base, rel) if base else rel
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            entries.append(Entry(target, "symlink", 0o777, uid, gid, target=os.readlink(disk)))
        elif stat.S_ISDIR(info.st_mode):
            entries.append(Entry(target, "dir", mode if chmod is None else chmod, uid, gid))
        elif stat.S_ISREG(info.st_mode):
            file_mode = mode if chmod is None else chmod
            entries.append(Entry(target, "file", file_mode, uid, gid, source=disk))
        else:
            raise CannotAppend(f"{context_rel} is a special file (fifo, socket or device)")
    return _keep_reincluded_parents(entries, item, ignore, base)


def _tree(
    root: Path, rel: str, prefix: str, prune: DockerIgnore | None
) -> Iterator[tuple[str, Path, os.stat_result]]:
    with os.scandir(root / rel if rel else root) as listing:
        children = sorted(listing, key=lambda e: e.name)
    for child in children:
        child_rel = f"{rel}/{child.name}" if rel else child.name
        info = child.stat(follow_symlinks=False)
        yield child_rel, Path(child.path), info
        if stat.S_ISDIR(info.st_mode) and not (prune and prune.excluded(prefix + child_rel)):
            yield from _tree(root, child_rel, prefix, prune)


def _keep_reincluded_parents(
    entries: list[Entry], item: SourceItem, ignore: DockerIgnore, base: str
) -> list[Entry]:
    """An excluded directory holding a re-included path (``!pattern``) is still created."""
    if not any(p.exception for p in ignore.patterns):
        return entries
    present = {e.path for e in entries}
    extra: list[Entry] = []
    for entry in entries:
        parent = posixpath.dirname(entry.path)
        while parent and parent != base and parent not in present:
            rel = parent[len(base) + 1 :] if base else parent
            info = (item.disk / rel).stat()
            extra.append(Entry(parent, "dir", stat.S_IMODE(info.st_mode), entry.uid, entry.gid))
            present.add(parent)
            parent = posixpath.dirname(parent)
    return entries + extra
