"""A layer as a reproducible tar: equal entries give equal bytes, so equal digests.

Entries are sorted by path components (parents first), every mtime is the same fixed time
(``SOURCE_DATE_EPOCH`` when set, else 1 s after the epoch, as Jib does: 0 confuses some
tools), user and group names are empty, and gzip gets a fixed level and a zero mtime. PAX
format: extended headers only where a name or id needs them, which every extractor reads.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from pipeline_kit.adapters.registry.references import sha256_digest
from pipeline_kit.append.copy_sources import Entry

DEFAULT_MTIME = 1
GZIP_LEVEL = 6
_TYPES = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE}


class LayerBlob(NamedTuple):
    data: bytes  # what is uploaded (compressed or not)
    digest: str  # of ``data``
    diff_id: str  # of the uncompressed tar
    media_type: str

    @property
    def size(self) -> int:
        return len(self.data)


def layer_mtime(environ: Mapping[str, str]) -> int:
    value = environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else DEFAULT_MTIME


def tar_bytes(entries: Iterable[Entry], mtime: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(entries, key=lambda e: e.path.split("/")):
            info = tarfile.TarInfo(entry.path)
            info.type = _TYPES[entry.kind]
            info.mode = entry.mode
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""
            info.mtime = mtime
            if entry.kind == "symlink":
                info.linkname = entry.target
                archive.addfile(info)
            elif entry.kind == "file":
                assert entry.source is not None
                data = entry.source.read_bytes()
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def make_layer(entries: Iterable[Entry], mtime: int, media_type: str) -> LayerBlob:
    raw = tar_bytes(entries, mtime)
    diff_id = sha256_digest(raw)
    data = gzip.compress(raw, GZIP_LEVEL, mtime=0) if media_type.endswith("gzip") else raw
    return LayerBlob(data, sha256_digest(data), diff_id, media_type)
