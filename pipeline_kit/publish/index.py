"""Multi-platform images: one OCI image index over per-platform images, by registry operations.

Kaniko and buildah build one platform per run; each job pushes its child, and ``merge`` puts
the children in one index, pushed under the build's tags. Nothing is pulled: the children's
manifests and configs are read, so each is checked to be the platform it is listed as.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.adapters.registry.references import ImageRef, platform_name, sha256_digest
from pipeline_kit.dockerfile.platform import Platform, parse_platform
from pipeline_kit.errors import InputError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class Child(NamedTuple):
    """One platform's image, as the merge was told it is."""

    platform: Platform
    reference: ImageRef


@dataclass(frozen=True)
class MergedIndex:
    """The index pushed: its digest, and each platform's image digest."""

    digest: str
    children: Mapping[str, str]  # platform -> image digest, in the index's order


def parse_child(text: str, image: ImageRef) -> Child:
    """``PLATFORM=REFERENCE``: a reference with a registry and repository, or a bare tag or
    digest of ``image``'s repository."""
    platform_text, equals, reference = text.partition("=")
    if not equals or not reference:
        raise InputError(
            f"{text!r}: not PLATFORM=REFERENCE.",
            hint=f"e.g. linux/arm64={image.registry}/{image.repository}@sha256:...",
        )
    platform = parse_platform(platform_text, what=text)
    if reference.startswith("sha256:"):
        return Child(platform, image.with_digest(reference))
    if "/" not in reference and ":" not in reference:
        return Child(platform, image.with_tag(reference))
    return Child(platform, ImageRef.parse(reference))


def check_children(children: Sequence[Child], image: ImageRef) -> None:
    """Refuse, before any request, what cannot be one index of ``image``: no child, a
    platform listed twice, a child in another repository (an index names its children by
    digest in its own repository)."""
    if not children:
        raise InputError(
            f"{image}: no children to merge.",
            hint="Name them as PLATFORM=REFERENCE, or list `platforms` in the config so the "
            "children are found under the build's tags.",
        )
    seen: dict[Platform, Child] = {}
    for child in children:
        if child.platform in seen:
            raise InputError(
                f"{child.platform}: listed twice ({seen[child.platform].reference} and "
                f"{child.reference}).",
                hint="An index has one image per platform: name each platform once.",
            )
        seen[child.platform] = child
        where = (child.reference.registry, child.reference.repository)
        if where != (image.registry, image.repository):
            raise InputError(
                f"{child.reference}: not in {image.registry}/{image.repository}, the "
                "repository the index goes to.",
                hint="Push each platform's image to the same repository (the build's image), "
                "or promote it there first.",
            )


def index_body(entries: Sequence[tuple[Platform, str, str, int]]) -> bytes:
    """The index over (platform, media type, digest, size) entries, in their order."""
    manifests = []
    for platform, media_type, digest, size in entries:
        described: dict[str, str] = {"architecture": platform.arch, "os": platform.os}
        if platform.variant:
            described["variant"] = platform.variant
        manifests.append(
            {"mediaType": media_type, "digest": digest, "size": size, "platform": described}
        )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return json.dumps(index, indent=2).encode()


def merge_index(
    client: RegistryClient, image: ImageRef, children: Sequence[Child], tags: Sequence[str]
) -> MergedIndex:
    """Read each child, check it is an image of the platform it is listed as, and push the
    index under ``tags`` (by digest first, so a tag never names an index that is not there)."""
    check_children(children, image)
    repository = image.repository
    entries = []
    for child in children:
        manifest = client.get_manifest(repository, child.reference.reference)
        if manifest.is_index:
            raise InputError(
                f"{child.reference}: is itself an index, not one platform's image.",
                hint=f"Name the {child.platform} image in it by its digest.",
            )
        body = json.loads(manifest.raw)
        config = json.loads(client.get_blob(repository, body["config"]["digest"]))
        found = platform_name(config)
        built = parse_platform(found, what=f"{child.reference}: its config") if found else None
        if built != child.platform:
            raise InputError(
                f"{child.reference}: listed as {child.platform}, but its config says "
                f"{found or 'no platform'}.",
                hint="Check which job built which platform (--platform of each build).",
            )
        entries.append((child.platform, manifest.media_type, manifest.digest, len(manifest.raw)))
    raw = index_body(entries)
    digest = client.put_manifest(repository, sha256_digest(raw), raw, OCI_INDEX)
    for tag in tags:
        client.put_manifest(repository, tag, raw, OCI_INDEX)
    return MergedIndex(digest, {str(p): d for p, _, d, _ in entries})
