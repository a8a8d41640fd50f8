"""The layer reader on tars made here: package databases found, whiteouts and opaque
directories applied to the layers below only, layers applied in order, gzip read as a
stream."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping

import pytest

from pipeline_kit.attest.layers import (
    UnreadableLayer,
    apply,
    normalized,
    packages_of,
    read_layer,
)

DPKG = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
Description: GNU C Library
 continuation line: Version: 0

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: python3
Status: install ok installed
Architecture: amd64
Version: 3.11.2-1+b1
"""

SITE = "opt/venv/lib/python3.11/site-packages"


def metadata(name: str, version: str) -> str:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: not-this\n"


def layer(
    files: Mapping[str, str | None], *, gzipped: bool = False, dirs: tuple[str, ...] = ()
) -> io.BytesIO:
    """A layer tar: ``None`` content makes an empty file (whiteouts are such)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        for name, text in files.items():
            data = (text or "").encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    data = gzip.compress(buffer.getvalue()) if gzipped else buffer.getvalue()
    return io.BytesIO(data)


def names(state: Mapping[str, tuple[object, ...]]) -> list[tuple[str, str, str]]:
    return [(p.kind, p.name, p.version) for p in packages_of(state)]  # type: ignore[arg-type]


def test_dpkg_status_lists_only_installed_packages_with_purls() -> None:
    change = read_layer(layer({"./var/lib/dpkg/status": DPKG}))
    state = apply({}, change)
    packages = packages_of(state)
    assert [(p.name, p.version) for p in packages] == [
        ("libc6", "2.36-9+deb12u4"),
        ("python3", "3.11.2-1+b1"),
    ]
    assert packages[0].purl == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
    assert packages[0].database == "var/lib/dpkg/status"


def test_python_and_conda_databases_are_read_from_a_gzip_stream() -> None:
    files = {
        f"{SITE}/numpy-2.1.3.dist-info/METADATA": metadata("numpy", "2.1.3"),
        f"{SITE}/numpy-2.1.3.dist-info/RECORD": "numpy/__init__.py,,\n",
        "usr/lib/python3/dist-packages/Safe_Tensors-0.4.5.dist-info/METADATA": metadata(
            "Safe_Tensors", "0.4.5"
        ),
        "opt/conda/conda-meta/zlib-1.3-h5eee18b_0.json": '{"name": "zlib", "version": "1.3",'
        ' "build": "h5eee18b_0"}',
        "opt/conda/conda-meta/history": "not json",
        "srv/app/METADATA": metadata("not-a-package", "1"),
    }
    state = apply({}, read_layer(layer(files, gzipped=True)))
    packages = {p.name: p for p in packages_of(state)}
    assert sorted(packages) == ["Safe_Tensors", "numpy", "zlib"]
    assert packages["numpy"].purl == "pkg:pypi/numpy@2.1.3"
    assert packages["Safe_Tensors"].purl == "pkg:pypi/safe-tensors@0.4.5"
    assert packages["zlib"].purl == "pkg:conda/zlib@1.3?build=h5eee18b_0"


def test_a_whiteout_deletes_a_lower_database_and_everything_under_a_path() -> None:
    lower = apply({}, read_layer(layer({
        f"{SITE}/numpy-2.1.3.dist-info/METADATA": metadata("numpy", "2.1.3"),
        f"{SITE}/six-1.16.0.dist-info/METADATA": metadata("six", "1.16.0"),
        "var/lib/dpkg/status": DPKG,
    })))  # fmt: skip
    upper = read_layer(layer({
        f"{SITE}/.wh.numpy-2.1.3.dist-info": None,
        "var/lib/dpkg/.wh.status": None,
    }), lower.keys())  # fmt: skip
    assert names(apply(lower, upper)) == [("pypi", "six", "1.16.0")]


def test_an_opaque_directory_hides_what_was_below_but_not_what_its_layer_writes() -> None:
    lower = apply({}, read_layer(layer({
        f"{SITE}/numpy-2.1.3.dist-info/METADATA": metadata("numpy", "2.1.3"),
        "var/lib/dpkg/status": DPKG,
    })))  # fmt: skip
    upper = read_layer(layer({
        f"{SITE}/.wh..wh..opq": None,
        f"{SITE}/numpy-2.2.0.dist-info/METADATA": metadata("numpy", "2.2.0"),
    }))  # fmt: skip
    assert ("pypi", "numpy", "2.2.0") in names(apply(lower, upper))
    assert ("pypi", "numpy", "2.1.3") not in names(apply(lower, upper))
    assert ("deb", "libc6", "2.36-9+deb12u4") in names(apply(lower, upper))


def test_a_whiteout_in_the_same_layer_does_not_delete_what_that_layer_writes() -> None:
    """OCI: whiteouts apply to the layers below; entries of the same layer stay."""
    only = read_layer(layer({
        f"{SITE}/numpy-2.1.3.dist-info/METADATA": metadata("numpy", "2.1.3"),
        f"{SITE}/.wh.numpy-2.1.3.dist-info": None,
    }))  # fmt: skip
    assert names(apply({}, only)) == [("pypi", "numpy", "2.1.3")]


def test_layers_apply_in_order_and_a_rewritten_database_replaces_the_old_one() -> None:
    first = apply({}, read_layer(layer({"var/lib/dpkg/status": DPKG})))
    rewritten = DPKG.replace("3.11.2-1+b1", "3.11.4-1")
    second = apply(first, read_layer(layer({"var/lib/dpkg/status": rewritten}), first.keys()))
    assert ("deb", "python3", "3.11.4-1") in names(second)
    assert ("deb", "python3", "3.11.2-1+b1") not in names(second)


def test_a_file_over_a_databases_directory_hides_it() -> None:
    lower = apply({}, read_layer(layer({
        f"{SITE}/numpy-2.1.3.dist-info/METADATA": metadata("numpy", "2.1.3"),
    })))  # fmt: skip
    upper = read_layer(layer({"opt/venv/lib": "a file now"}), lower.keys())
    assert names(apply(lower, upper)) == []


def test_neutral_layers_are_those_that_touch_no_database() -> None:
    code = read_layer(layer({"srv/app/main.py": "print(1)\n"}, dirs=("srv", "srv/app")))
    assert code.neutral
    assert not read_layer(layer({"srv/.wh.old.py": None})).neutral
    assert not read_layer(layer({f"{SITE}/x-1.dist-info/METADATA": metadata("x", "1")})).neutral


def test_a_layer_that_is_not_a_tar_is_unreadable() -> None:
    with pytest.raises(UnreadableLayer):
        read_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"zstd frame, not read" * 40))


@pytest.mark.parametrize(
    ("name", "path"),
    [("./var/lib/dpkg/status", "var/lib/dpkg/status"), ("/opt/x/", "opt/x"), ("a", "a")],
)
def test_member_names_are_normalized(name: str, path: str) -> None:
    assert normalized(name) == path
