"""Read a pushed image back the way a container engine sees it, to compare images built apart.

The filesystem is not modelled: buildah pulls the image from the registry into a throwaway
containers/storage and mounts it (the same extraction podman uses, whiteouts and all); the
tree under that mount is walked. The config and manifest come straight from the registry API.
Timestamps are left out on purpose: builders stamp files differently and nothing runs on them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

MANIFEST_ACCEPT = (
    "application/vnd.oci.image.manifest.v1+json,"
    "application/vnd.docker.distribution.manifest.v2+json"
)
# The parts of an image config that a Dockerfile decides (docker image inspect's .Config).
CONFIG_FIELDS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
    "Healthcheck",
)


class FileEntry(NamedTuple):
    kind: str  # "file", "dir", "symlink", "other"
    mode: int  # permission bits (with setuid/setgid/sticky)
    uid: int
    gid: int
    target: str | None  # symlink target
    sha256: str | None  # file content


def _registry_json(url: str, accept: str | None = None) -> tuple[dict[str, Any], str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = answer.read()
        return json.loads(body), answer.headers.get("Docker-Content-Digest", "")


def image_manifest(registry_url: str, repo: str, ref: str) -> dict[str, Any]:
    """The image manifest, with its digest under ``_digest``."""
    data, digest = _registry_json(f"{registry_url}/v2/{repo}/manifests/{ref}", MANIFEST_ACCEPT)
    data["_digest"] = digest
    return data


def image_config(registry_url: str, repo: str, ref: str) -> dict[str, Any]:
    """The whole image config blob (``config``, ``rootfs``, ``history``, ...)."""
    manifest = image_manifest(registry_url, repo, ref)
    config, _ = _registry_json(f"{registry_url}/v2/{repo}/blobs/{manifest['config']['digest']}")
    return config


def config_fields(config: dict[str, Any], drop_labels: tuple[str, ...] = ()) -> dict[str, Any]:
    """The Dockerfile-decided fields of ``config``, empty values normalised to None."""
    inner = config.get("config") or {}
    fields = {name: inner.get(name) or None for name in CONFIG_FIELDS}
    if fields["Labels"]:
        kept = {k: v for k, v in fields["Labels"].items() if k not in drop_labels}
        fields["Labels"] = kept or None
    return fields


def walk_tree(root: Path) -> dict[str, FileEntry]:
    """Every path under ``root`` (relative, "/"-rooted) with its type, mode, owner, content."""
    entries: dict[str, FileEntry] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(directory, name)
            info = path.lstat()
            mode = stat.S_IMODE(info.st_mode)
            rel = "/" + path.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(path)
                entry = FileEntry("symlink", mode, info.st_uid, info.st_gid, target, None)
            elif stat.S_ISDIR(info.st_mode):
                entry = FileEntry("dir", mode, info.st_uid, info.st_gid, None, None)
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entry = FileEntry("file", mode, info.st_uid, info.st_gid, None, digest)
            else:
                entry = FileEntry("other", mode, info.st_uid, info.st_gid, None, None)
            entries[rel] = entry
    return entries


class ImageReader:
    """Pulls images into its own buildah storage and walks their mounted root filesystems."""

    def __init__(self, storage: Path, driver: str = "vfs") -> None:
        self.flags = [
            f"--storage-driver={driver}",
            f"--root={storage / 'root'}",
            f"--runroot={storage / 'run'}",
        ]

    def _buildah(self, *args: str) -> str:
        proc = subprocess.run(
            ["buildah", *self.flags, *args], capture_output=True, text=True, timeout=600
        )
        if proc.returncode != 0:
            raise AssertionError(f"buildah {' '.join(args)} failed: {proc.stderr[-2000:]}")
        return proc.stdout.strip()

    def filesystem(self, reference: str) -> dict[str, FileEntry]:
        """The merged filesystem of ``reference`` (``host:port/repo@sha256:...`` or ``:tag``)."""
        with self._mounted(reference) as root:
            return walk_tree(root)

    def copy_out(self, reference: str, path: str, destination: Path) -> None:
        """Copy the directory ``path`` of ``reference``'s filesystem to ``destination``."""
        with self._mounted(reference) as root:
            shutil.copytree(root / path.lstrip("/"), destination, symlinks=True)

    @contextlib.contextmanager
    def _mounted(self, reference: str) -> Iterator[Path]:
        container = self._buildah(
            "from", "--pull-always", "--tls-verify=false", "--quiet", f"docker://{reference}"
        )
        try:
            yield Path(self._buildah("mount", container))
        finally:
            self._buildah("rm", container)
