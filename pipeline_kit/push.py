"""Publishing by registry operations: push an OCI layout, point tags at an existing digest.

Order is what makes a push safe to interrupt: blobs first, then the manifest by digest, then
the tags. A tag therefore never points at an image whose parts are missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline_kit.adapters.registry import Manifest, RegistryClient, sha256_digest
from pipeline_kit.errors import InputError
from pipeline_kit.references import ImageRef


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


def _referenced_blobs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
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
    for blob in _referenced_blobs(manifest):
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


def point_tags(client: RegistryClient, source: ImageRef, targets: Sequence[ImageRef]) -> str:
    """Make every target tag name the digest of ``source``, by manifest GET and PUT only.

    Targets must be on the client's registry. For a target in another repository the blobs
    (and the child manifests of an index) are mounted from the source repository first.
    """
    manifest = client.get_manifest(source.repository, source.reference)
    for target in targets:
        if target.registry != source.registry:
            raise InputError(
                f"{target}: promote works within one registry ({source.registry}).",
                hint="Copy across registries with skopeo or crane; then promote there.",
            )
        if target.tag is None:
            raise InputError(f"{target}: a target needs a tag.", hint="Write repo:tag.")
        if target.repository != source.repository:
            _copy_into(client, source.repository, manifest, target.repository)
        client.put_manifest(target.repository, target.tag, manifest.raw, manifest.media_type)
    return manifest.digest


def _copy_into(client: RegistryClient, source_repo: str, manifest: Manifest, repo: str) -> None:
    body = json.loads(manifest.raw)
    if manifest.is_index:
        for child in body.get("manifests", []):
            child_manifest = client.get_manifest(source_repo, child["digest"])
            _copy_into(client, source_repo, child_manifest, repo)
            client.put_manifest(
                repo, child_manifest.digest, child_manifest.raw, child_manifest.media_type
            )
        return
    for blob in _referenced_blobs(body):
        digest = blob["digest"]
        if client.blob_exists(repo, digest) or client.mount_blob(repo, digest, source_repo):
            continue
        # The registry would not mount (e.g. no pull right on the source): copy the bytes.
        data = client.get_blob(source_repo, digest)
        client.upload_blob(repo, data, digest)
