"""Push a builder's OCI image layout to a registry.

Order is what makes a push safe to interrupt: blobs first, then the manifest by digest, then
the tags. A tag therefore never points at an image whose parts are missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.adapters.registry.references import sha256_digest
from pipeline_kit.errors import InputError


def read_layout(layout: Path) -> tuple[bytes, str]:
    """The image manifest bytes and media type of a one-image OCI layout."""
    try:
        index = json.loads((layout / "index.json").read_text())
        entry = index["manifests"][0]
        digest = entry["digest"]
        raw = _blob_path(layout, digest).read_bytes()
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise InputError(
            f"{layout}: not an OCI image layout with one image ({exc}).",
            hint="The builder's output is incomplete; run the build again.",
        ) from None
    media_type = entry.get("mediaType") or json.loads(raw).get("mediaType", "")
    return raw, str(media_type)


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def referenced_blobs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [manifest["config"], *manifest.get("layers", [])]


def push_layout(
    client: RegistryClient,
    layout: Path,
    repository: str,
    tags: Sequence[str],
    *,
    progress: Callable[[str], None] = lambda message: None,
) -> str:
    """Upload the image in ``layout`` to ``repository``; returns the manifest digest."""
    return push_layout_counted(client, layout, repository, tags, progress=progress)[0]


def push_layout_counted(
    client: RegistryClient,
    layout: Path,
    repository: str,
    tags: Sequence[str],
    *,
    progress: Callable[[str], None] = lambda message: None,
) -> tuple[str, int]:
    """``push_layout``, also returning the bytes sent (blobs and manifest PUTs)."""
    raw, media_type = read_layout(layout)
    manifest = json.loads(raw)
    sent = 0
    for blob in referenced_blobs(manifest):
        digest = blob["digest"]
        if client.blob_exists(repository, digest):
            continue
        path = _blob_path(layout, digest)
        client.upload_blob(repository, path, digest)
        sent += int(blob.get("size", 0))
        progress(f"pushed {digest[:19]} ({int(blob.get('size', 0)) / 1e6:.1f} MB)")
    digest = client.put_manifest(repository, sha256_digest(raw), raw, media_type)
    for tag in tags:
        client.put_manifest(repository, tag, raw, media_type)
    progress(f"{repository}@{digest}: {sent / 1e6:.1f} MB uploaded, {len(tags)} tags")
    return digest, sent + len(raw) * (1 + len(tags))
