"""Point tags at an image that exists (retag, promote): manifest GET and PUT, nothing pulled.

Within one repository that is all; for a target in another repository of the same registry the
blobs (and an index's child manifests) are mounted first, copied where mounting is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pipeline_kit.adapters.registry.client import Manifest, RegistryClient
from pipeline_kit.adapters.registry.references import ImageRef
from pipeline_kit.errors import InputError
from pipeline_kit.publish.layout import referenced_blobs


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
    for blob in referenced_blobs(body):
        digest = blob["digest"]
        if client.blob_exists(repo, digest) or client.mount_blob(repo, digest, source_repo):
            continue
        # The registry would not mount (e.g. no pull right on the source): copy the bytes.
        data = client.get_blob(source_repo, digest)
        client.upload_blob(repo, data, digest)
