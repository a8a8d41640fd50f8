"""What each layer of an image does to its package databases, read from the layer's tar as a
stream, and the databases that remain once the layers are applied in order.

A layer is read entry by entry (``tarfile``'s stream mode, gzip undone on the way), so it is
never held in memory: only the package databases it writes are read, each a small file.
Whiteouts follow the OCI image layout: ``dir/.wh.name`` deletes ``dir/name`` and everything
under it from the layers below; ``dir/.wh..wh..opq`` hides everything the layers below had
under ``dir``; neither touches what the same layer writes. A file written where a lower layer
had a directory hides that directory's content too.
"""

from __future__ import annotations

import tarfile
from collections.abc import Collection, Mapping
from typing import IO, NamedTuple

from pipeline_kit.attest.packages import MAX_DATABASE_BYTES, Package, database_kind, parse_database

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"

# A database's path -> the packages it lists: the image's packages, as far as layers went.
PackageState = Mapping[str, tuple[Package, ...]]


class UnreadableLayer(Exception):
    """The layer is not a tar the kit can read (zstd, or corrupt)."""


class LayerChange(NamedTuple):
    removed: tuple[str, ...]  # paths deleted below, each with everything under it
    opaque: tuple[str, ...]  # directories whose content below is hidden
    databases: Mapping[str, tuple[Package, ...]]  # package databases this layer writes
    whiteouts: int  # whiteout entries of any kind, relevant to a database or not

    @property
    def neutral(self) -> bool:
        """Whether the layer can change no package database, whatever lies below it."""
        return not self.databases and not self.whiteouts and not self.removed


def read_layer(stream: IO[bytes], below: Collection[str] = ()) -> LayerChange:
    """What the layer's tar in ``stream`` (plain or compressed) does to package databases;
    ``below``: the database paths the layers under it hold, which a file written over one of
    their directories hides (as ``removed``)."""
    ancestors = {path.rsplit("/", depth)[0] for path in below for depth in
                 range(1, path.count("/") + 1)}  # fmt: skip
    removed: list[str] = []
    opaque: list[str] = []
    databases: dict[str, tuple[Package, ...]] = {}
    whiteouts = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                path = normalized(member.name)
                directory, _, name = path.rpartition("/")
                if name == OPAQUE:
                    whiteouts += 1
                    opaque.append(directory)
                    continue
                if name.startswith(WHITEOUT):
                    whiteouts += 1
                    removed.append(f"{directory}/{name[len(WHITEOUT) :]}".lstrip("/"))
                    continue
                if not member.isdir() and path in ancestors:
                    removed.append(path)  # a file where a database's directory was
                kind = database_kind(path)
                if kind is None:
                    continue
                if member.isfile() and member.size <= MAX_DATABASE_BYTES:
                    source = archive.extractfile(member)
                    data = source.read() if source is not None else b""
                    databases[path] = parse_database(kind, path, data)
                elif member.islnk():
                    target = normalized(member.linkname)
                    listed = databases.get(target, ())
                    databases[path] = tuple(p._replace(database=path) for p in listed)
                else:
                    databases[path] = ()  # not a file the kit reads: it lists nothing
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise UnreadableLayer(str(exc) or type(exc).__name__) from None
    return LayerChange(tuple(removed), tuple(opaque), databases, whiteouts)


def apply(state: PackageState, change: LayerChange) -> dict[str, tuple[Package, ...]]:
    """The databases once ``change`` is laid over ``state``."""
    kept = {
        path: packages
        for path, packages in state.items()
        if not any(path == gone or path.startswith(gone + "/") for gone in change.removed)
        and not any(path.startswith(directory + "/") for directory in change.opaque if directory)
        and "" not in change.opaque
    }
    kept.update(change.databases)
    return kept


def packages_of(state: PackageState) -> list[Package]:
    """Every package the databases list, in a stable order."""
    found = [package for packages in state.values() for package in packages]
    return sorted(found, key=lambda p: (p.kind, p.name.lower(), p.version, p.database))


def normalized(name: str) -> str:
    """A tar member's name as a path from the root, without ``./`` or a leading ``/``."""
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")
