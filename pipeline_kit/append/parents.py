"""The directories above what a new layer writes, as the previous image shows them.

A builder creates a missing destination directory (and those above it) with the ``--chown``
owner, creates the working directory with the USER's owner at the next step that writes,
leaves an existing directory as it is (buildah 1.28, measured), and writes its layer through
a symlinked directory. Which of these applies depends on what the image already holds there,
which the kit cannot see without downloading kept layers. The previous image's layer for the
same instruction (same destination, flags, working directory and user: equal effect keys)
shows it: the builder put every directory above what it wrote in that layer, as it was
after the step. So a new layer takes those entries from the old one; where the old layers
cannot answer (a new destination, a path an earlier old layer wrote that this build does
not, a symlink on the way) append refuses and the builder runs.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Mapping, MutableMapping, Sequence
from typing import NamedTuple

from pipeline_kit.append import CannotAppend
from pipeline_kit.append.copy_sources import CopyPlacement, Entry
from pipeline_kit.append.steps import CopyStep

WHITEOUT = ".wh."


class PathInfo(NamedTuple):
    kind: str  # "dir", "file", "symlink", "link" (hard link) or "other"
    mode: int
    uid: int
    gid: int


Listing = Mapping[str, PathInfo]


def read_listing(blob: bytes, what: str) -> dict[str, PathInfo]:
    """Every path in a layer blob (tar, gzip or not), by its path relative to /."""
    listing: dict[str, PathInfo] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as archive:
            for member in archive:
                path = posixpath.normpath("/" + member.name).lstrip("/")
                if not path:
                    continue
                if posixpath.basename(path).startswith(WHITEOUT):
                    raise CannotAppend(f"{what} deletes files (whiteouts): not a plain COPY layer")
                kind = (
                    "dir"
                    if member.isdir()
                    else "file"
                    if member.isreg()
                    else "symlink"
                    if member.issym()
                    else "link"
                    if member.islnk()
                    else "other"
                )
                listing[path] = PathInfo(kind, member.mode & 0o7777, member.uid, member.gid)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CannotAppend(f"{what} cannot be read as a tar ({exc})") from None
    return listing


def complete_layer(
    step: CopyStep,
    placement: CopyPlacement,
    own: MutableMapping[str, PathInfo],
    earlier_old: Sequence[Listing],
    same: Listing | None,
) -> list[Entry]:
    """The entries of the new layer: content, plus the directories above it as they will be.

    ``own``: what this build's earlier new layers wrote (updated with this layer's entries);
    ``earlier_old``: the previous image's replaced layers before this instruction; ``same``:
    its layer for this instruction when that had equal effect keys, else None.
    """
    where = f"line {step.line}"

    def known(path: str) -> PathInfo | None:
        if path in own:
            return own[path]
        if any(path in listing for listing in earlier_old):
            raise CannotAppend(
                f"{where}: cannot tell how /{path} is in the image: an earlier replaced layer "
                "of the previous image wrote it and this build does not"
            )
        if same is None:
            raise CannotAppend(
                f"{where}: the previous image has no layer of this same instruction to show "
                "the directories it writes into"
            )
        return same.get(path)

    content = list(placement.content)
    dest_dirs = list(placement.dest_dirs)
    if placement.file_or_dir is not None:
        dest, name = placement.file_or_dir
        info = known(dest)
        if info is not None and info.kind == "dir":
            content = [
                Entry(posixpath.join(dest, name), e.kind, e.mode, e.uid, e.gid, e.target, e.source)
                for e in content
            ]
            dest_dirs.append(dest)
        elif info is None or info.kind != "file":
            raise CannotAppend(
                f"{where}: cannot tell whether /{dest} is a directory (the file would go "
                "inside) or not"
            )
    written = {entry.path for entry in content}
    parents: list[Entry] = []
    for path in dest_dirs:
        info = known(path)
        if info is None:
            raise CannotAppend(
                f"{where}: the previous image's layer does not show /{path}; it may be a "
                "symlink or missing, and the builder would treat those differently"
            )
        if info.kind != "dir":
            raise CannotAppend(f"{where}: /{path} is a {info.kind} in the image, not a directory")
        parents.append(Entry(path, "dir", info.mode, info.uid, info.gid))
    workdir = step.workdir.strip("/")
    if workdir and workdir not in written and workdir not in dest_dirs and workdir not in own:
        # Below a copied directory, the old layer may show it as that copy's content.
        below = dest_dirs[-1] + "/" if dest_dirs else ""
        inside = bool(below) and workdir.startswith(below)
        info = known(workdir)
        if info is not None:
            if inside or info.kind != "dir":
                raise CannotAppend(
                    f"{where}: cannot tell how the working directory /{workdir} is in the image"
                )
            parents.append(Entry(workdir, "dir", info.mode, info.uid, info.gid))
        # Absent from the old layer of the same step: it existed already, and stays as it is.
    entries = parents + content
    for entry in entries:
        before = own.get(entry.path)
        if before is not None and (before.kind == "dir") != (entry.kind == "dir"):
            raise CannotAppend(f"{where}: /{entry.path} changes between a directory and a file")
        own[entry.path] = PathInfo(entry.kind, entry.mode, entry.uid, entry.gid)
    return entries
