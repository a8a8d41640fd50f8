"""The image reader the equivalence tests rely on sees what a container engine sees."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

from tests.support.images import FileEntry, ImageReader, config_fields, image_config, walk_tree
from tests.support.services.registry import RegistryServer


def _buildah(storage: Path, *args: str) -> str:
    flags = ["--storage-driver=vfs", f"--root={storage}/root", f"--runroot={storage}/run"]
    proc = subprocess.run(["buildah", *flags, *args], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def test_walk_tree_reports_types_modes_owners_links_and_content(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "d" / "f").write_text("one")
    (tmp_path / "d" / "f").chmod(0o640)
    (tmp_path / "l").symlink_to("d/f")
    tree = walk_tree(tmp_path)
    uid, gid = os.getuid(), os.getgid()
    assert tree["/d"] == FileEntry("dir", 0o750, uid, gid, None, None)
    assert tree["/d/f"] == FileEntry(
        "file", 0o640, uid, gid, None, hashlib.sha256(b"one").hexdigest()
    )
    link_mode = stat.S_IMODE((tmp_path / "l").lstat().st_mode)
    assert tree["/l"] == FileEntry("symlink", link_mode, uid, gid, "d/f", None)
    (tmp_path / "d" / "f").write_text("two")
    assert walk_tree(tmp_path)["/d/f"].sha256 != tree["/d/f"].sha256


def test_reader_applies_whiteouts_of_a_real_pushed_image(
    tmp_path: Path, registry: RegistryServer
) -> None:
    """A file deleted by a later layer is absent from the merged tree, as podman would run it."""
    context = tmp_path / "ctx"
    context.mkdir()
    shutil.copy("/usr/bin/busybox", context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "sh", "-c", "echo gone > /tmp-file"]\n'
        'RUN ["/bin/busybox", "rm", "/tmp-file"]\n'
        "ENV GREETING=hello\nUSER 10001\n"
    )
    storage = tmp_path / "storage"
    _buildah(storage, "bud", "--isolation=chroot", "--quiet", "-t", "localhost/t", str(context))
    ref = f"{registry.host}/images/whiteout:v1"
    _buildah(storage, "push", "--tls-verify=false", "localhost/t", f"docker://{ref}")
    tree = ImageReader(tmp_path / "reader").filesystem(ref)
    assert tree["/bin/busybox"].kind == "file" and tree["/bin/busybox"].mode == 0o755
    assert "/tmp-file" not in tree
    fields = config_fields(image_config(registry.url, "images/whiteout", "v1"))
    assert fields["User"] == "10001"
    assert "GREETING=hello" in fields["Env"]
