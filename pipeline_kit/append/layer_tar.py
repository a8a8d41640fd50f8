"""A layer as a reproducible tar: equal entries give equal bytes, so equal digests.

Entries are sorted by path components (parents first), every mtime is the same fixed time
(``SOURCE_DATE_EPOCH`` when set, else 1 s after the epoch, as Jib does: 0 confuses some
tools), user and group names are empty, and gzip gets a fixed level and a zero mtime. PAX
format: extended headers only where a name or id needs them, which every extractor reads.

A layer is written as a stream: files are read in blocks into the tar, the tar is hashed
(its diff id) and compressed as it is written, and the compressed bytes are hashed (its
digest) on their way into a spool that stays in memory up to ``SPOOL_IN_MEMORY`` and moves to
an anonymous temporary file beyond. A layer of assets costs disk, never its size in memory.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Mapping
from typing import IO, NamedTuple, cast

from pipeline_kit.append.copy_sources import Entry

DEFAULT_MTIME = 1
GZIP_LEVEL = 6
_TYPES = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE}


# A layer up to this size stays in memory (a code change: nothing touches the disk).
SPOOL_IN_MEMORY = 8 * 1024 * 1024


class Spool:
    """Bytes written once, then read whole as many times as needed: in memory while small,
    in an anonymous temporary file (gone when closed) once larger than ``limit``."""

    def __init__(self, limit: int = SPOOL_IN_MEMORY) -> None:
        self.limit = limit
        self.size = 0
        self._memory: io.BytesIO | None = io.BytesIO()
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._memory is not None and self.size + len(data) > self.limit:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115  # kept until close()
            self._file.write(self._memory.getbuffer())
            self._memory = None
        target = self._memory if self._memory is not None else self._file
        assert target is not None
        target.write(data)
        self.size += len(data)

    def body(self) -> bytes | IO[bytes]:
        """The bytes themselves while in memory, else the file, at its start."""
        if self._memory is not None:
            return self._memory.getvalue()
        assert self._file is not None
        self._file.flush()
        self._file.seek(0)
        return self._file

    def read_all(self) -> bytes:
        """The whole content in memory: for tests and small layers only."""
        body = self.body()
        return body if isinstance(body, bytes) else body.read()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class LayerBlob(NamedTuple):
    spool: Spool  # what is uploaded (compressed or not)
    digest: str  # of the spool's bytes
    diff_id: str  # of the uncompressed tar
    media_type: str

    @property
    def size(self) -> int:
        return self.spool.size

    @property
    def data(self) -> bytes:
        """The layer's bytes in memory (tests, small layers); uploads take ``spool.body()``."""
        return self.spool.read_all()


class _LayerSink:
    """What the tar is written into: hashes it, compresses it when asked, hashes and spools
    what comes out."""

    def __init__(self, spool: Spool, compress: bool) -> None:
        self.spool = spool
        self.tar_hash = hashlib.sha256()
        self.out_hash = hashlib.sha256()
        # wbits 31: a gzip member with a zero mtime, as gzip.compress(data, mtime=0) makes it.
        self._deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if compress else None
        self.written = 0

    def tell(self) -> int:
        return self.written

    def write(self, data: bytes) -> int:
        self.written += len(data)
        self.tar_hash.update(data)
        self._out(self._deflate.compress(data) if self._deflate is not None else bytes(data))
        return len(data)

    def finish(self) -> None:
        if self._deflate is not None:
            self._out(self._deflate.flush())

    def _out(self, data: bytes) -> None:
        if data:
            self.out_hash.update(data)
            self.spool.write(data)


def layer_mtime(environ: Mapping[str, str]) -> int:
    value = environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else DEFAULT_MTIME


def write_tar(entries: Iterable[Entry], mtime: int, sink: IO[bytes] | _LayerSink) -> None:
    """The layer's tar, written into ``sink``; files are read in blocks, never whole."""
    fileobj = cast(IO[bytes], sink)  # tarfile only writes to it and asks where it is
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as archive:
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
                with entry.source.open("rb") as source:
                    info.size = os.fstat(source.fileno()).st_size
                    archive.addfile(info, source)
            else:
                archive.addfile(info)


def tar_bytes(entries: Iterable[Entry], mtime: int) -> bytes:
    buffer = io.BytesIO()
    write_tar(entries, mtime, buffer)
    return buffer.getvalue()


def make_layer(entries: Iterable[Entry], mtime: int, media_type: str) -> LayerBlob:
    spool = Spool()
    sink = _LayerSink(spool, compress=media_type.endswith("gzip"))
    try:
        write_tar(entries, mtime, sink)
        sink.finish()
    except BaseException:
        spool.close()
        raise
    diff_id = f"sha256:{sink.tar_hash.hexdigest()}"
    return LayerBlob(spool, f"sha256:{sink.out_hash.hexdigest()}", diff_id, media_type)
