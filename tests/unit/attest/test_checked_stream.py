"""A blob read as a stream: bytes handed on as they arrive, the digest checked at the end,
including the bytes a tar reader leaves unread."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from pipeline_kit.adapters.registry.client import _CheckedStream
from pipeline_kit.attest.layers import read_layer
from pipeline_kit.errors import EnvironmentFault


def chunks(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_a_tar_is_read_through_the_stream_and_its_rest_checked() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = b"Package: a\nStatus: install ok installed\nVersion: 1\n"
        info = tarfile.TarInfo("var/lib/dpkg/status")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    stream = _CheckedStream(iter(chunks(blob, 1000)), digest(blob), "blob")
    change = read_layer(stream)  # type: ignore[arg-type]
    stream.finish()  # the tar's end padding is read and the digest checked
    assert [p.name for p in change.databases["var/lib/dpkg/status"]] == ["a"]


def test_bytes_that_do_not_match_the_digest_fail_at_the_end() -> None:
    blob = b"x" * 100
    stream = _CheckedStream(iter(chunks(blob)), digest(b"y" * 100), "registry/blob")
    assert io.BufferedReader(stream).read(10) == b"x" * 10
    with pytest.raises(EnvironmentFault, match="does not match its digest"):
        stream.finish()
