"""Artifacts attached to an image digest as OCI 1.1 referrers, by registry operations alone.

An artifact is an image manifest with an ``artifactType``, the empty config, one blob, and a
``subject`` naming the digest it is about. Registries with the referrers API list it under
``/v2/<repo>/referrers/<digest>``; for those without (distribution 2.x), the kit keeps the
referrers tag the OCI distribution spec describes: ``sha256-<hex>`` holds an index of the
digest's referrers, updated on each attach.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from pipeline_kit.adapters.registry.client import (
    MANIFEST_TYPES,
    Descriptor,
    Manifest,
    RegistryClient,
    in_parallel,
    started,
)
from pipeline_kit.adapters.registry.references import sha256_digest
from pipeline_kit.errors import EnvironmentFault, InputError, KitError

OCI_MANIFEST, OCI_INDEX = MANIFEST_TYPES[0], MANIFEST_TYPES[1]
EMPTY_CONFIG = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class Artifact:
    digest: str  # of the artifact's manifest
    artifact_type: str
    created: str  # the annotation, RFC 3339; "" when absent
    data: bytes  # its one blob


def referrers_tag(digest: str) -> str:
    """The fallback tag of a digest's referrers: ``sha256:abc...`` -> ``sha256-abc...``."""
    return digest.replace(":", "-", 1)


def subject_of(client: RegistryClient, repo: str, digest: str) -> Descriptor:
    """The descriptor of the manifest ``repo@digest``, which an artifact names as its subject."""
    found = client.head_manifest(repo, digest)
    if found is None:
        raise InputError(
            f"{client.host}/{repo}@{digest}: no such manifest.",
            hint="Give the digest of an image in that repository (the build record has it).",
        )
    return Descriptor(found.media_type, digest, found.size)


def attach(
    client: RegistryClient,
    repo: str,
    subject: Descriptor,
    artifact_type: str,
    data: bytes,
    created: str,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """Attach ``data`` to ``subject`` as an artifact of ``artifact_type``; its manifest digest.
    ``annotations`` join the creation time on the manifest (and on its referrers entry)."""
    (digest,) = attach_all(client, repo, subject, [(artifact_type, data, created, annotations)])
    return digest


# artifact type, its one blob, creation time, further annotations
ArtifactSpec = tuple[str, bytes, str, "Mapping[str, str] | None"]


class Ahead(NamedTuple):
    """What attaching artifacts to a subject needs before their contents are known, going
    (``start_attach``): each is a function that waits for its part."""

    empty: Callable[[], bool]  # the empty config's upload
    sessions: Sequence[Callable[[], str]]  # an upload session per artifact
    tag_entries: Callable[[], list[dict[str, Any]] | None]  # ``_tag_entries``


def start_attach(client: RegistryClient, repo: str, subject: str, count: int) -> Ahead:
    """Set going what attaching ``count`` new artifacts to ``subject`` needs first: the empty
    config's upload, an upload session for each artifact's blob, and the referrers tag's
    read. A caller still making the artifacts (an append's statements) then sends their
    bytes in one request each, not two."""
    empty = sha256_digest(EMPTY_CONFIG)
    return Ahead(
        started(partial(client.upload_missing_blob, repo, EMPTY_CONFIG, empty)),
        [started(partial(client.open_upload, repo)) for _ in range(count)],
        started(partial(_tag_entries, client, repo, subject)),
    )


def attach_all(
    client: RegistryClient,
    repo: str,
    subject: Descriptor,
    artifacts: Sequence[ArtifactSpec],
    subject_ready: Callable[[], None] | None = None,
    ahead: Ahead | None = None,
) -> list[str]:
    """Attach several artifacts to ``subject`` at once: blobs and manifests sent side by side,
    the referrers tag (where there is no referrers API) updated once. Their manifest digests.

    ``subject_ready``: the subject is still going up; it returns once it is in. The blobs go
    up meanwhile, the manifests naming the subject after. ``ahead``: ``start_attach``'s work
    for these artifacts, already going."""
    empty = Descriptor(EMPTY_TYPE, sha256_digest(EMPTY_CONFIG), len(EMPTY_CONFIG))
    uploads: list[Callable[[], Any]] = [
        ahead.empty
        if ahead
        else partial(client.upload_missing_blob, repo, EMPTY_CONFIG, empty.digest)
    ]
    sessions = list(ahead.sessions) if ahead else []
    manifests = []
    for artifact_type, data, created, extra in artifacts:
        blob = Descriptor(artifact_type, sha256_digest(data), len(data))
        if sessions:
            uploads.append(partial(_finish, client, repo, sessions.pop(0), data, blob.digest))
        else:
            uploads.append(partial(client.upload_missing_blob, repo, data, blob.digest))
        manifests.append({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": _descriptor(empty),
            "layers": [_descriptor(blob)],
            "subject": _descriptor(subject),
            "annotations": {CREATED: created, **(extra or {})},
        })  # fmt: skip
    # Beside the uploads: whether the registry lists referrers itself, and if not, what the
    # referrers tag lists now, so that only the tag's PUT follows the manifests.
    tag_read = ahead.tag_entries if ahead else partial(_tag_entries, client, repo, subject.digest)
    listed_now: list[dict[str, Any]] | None = in_parallel([*uploads, tag_read])[-1]
    if subject_ready is not None:
        subject_ready()
    raws = [json.dumps(manifest, separators=(",", ":")).encode() for manifest in manifests]
    digests = in_parallel(
        [partial(client.put_manifest, repo, sha256_digest(raw), raw, OCI_MANIFEST) for raw in raws]
    )
    if listed_now is not None:
        entries = []
        for manifest, raw, digest in zip(manifests, raws, digests, strict=True):
            entry = {**_descriptor(Descriptor(OCI_MANIFEST, digest, len(raw)))}
            entry["artifactType"] = manifest["artifactType"]
            entry["annotations"] = manifest["annotations"]
            entries.append(entry)
        _put_tag(client, repo, subject.digest, listed_now, entries)
    return digests


def latest(
    client: RegistryClient,
    repo: str,
    subject: str,
    artifact_type: str,
    accept: Callable[[bytes], bool] = lambda data: True,
) -> Artifact | None:
    """The newest artifact of ``artifact_type`` attached to ``subject`` whose blob ``accept``
    takes, or None."""
    candidates = [
        e for e in listed(client, repo, subject) if e.get("artifactType") == artifact_type
    ]
    candidates.sort(key=lambda e: str((e.get("annotations") or {}).get(CREATED, "")), reverse=True)
    for entry in candidates:
        digest = str(entry.get("digest", ""))
        manifest = client.get_manifest(repo, digest)
        layers = _json(manifest.raw, f"{repo}@{digest}").get("layers") or []
        if len(layers) != 1 or not isinstance(layers[0], dict):
            continue  # not one of the kit's artifacts
        data = client.get_blob(repo, str(layers[0].get("digest", "")))
        if accept(data):
            created = str((entry.get("annotations") or {}).get(CREATED, ""))
            return Artifact(digest, artifact_type, created, data)
    return None


def listed(client: RegistryClient, repo: str, subject: str) -> list[dict[str, Any]]:
    """The referrers entries of ``subject``: the referrers API's, else the referrers tag's.

    Until the client knows whether the registry has the API, the tag is read beside the
    question: a registry without it (distribution 2.x) costs one round trip, not two in a
    row, and one with it one unneeded read, once."""
    tag = referrers_tag(subject)
    found: list[dict[str, Any]] | None
    index: Manifest | None
    if client.referrers_api is None:
        calls: list[Callable[[], Any]] = [
            partial(client.referrers, repo, subject),
            partial(client.find_manifest, repo, tag),
        ]
        found, index = in_parallel(calls)
    else:
        found = client.referrers(repo, subject)
        index = client.find_manifest(repo, tag) if found is None else None
    if found is not None:
        return found
    return _manifests(index.raw, f"{repo}:{tag}") if index else []


def _finish(
    client: RegistryClient, repo: str, session: Callable[[], str], data: bytes, digest: str
) -> None:
    """``data`` into the session opened ahead (a whole upload if opening it failed)."""
    try:
        location = session()
    except KitError:
        client.upload_blob(repo, data, digest)
        return
    client.finish_upload(repo, location, data, digest)


def _tag_entries(client: RegistryClient, repo: str, subject: str) -> list[dict[str, Any]] | None:
    """None where the registry has the referrers API; else the entries of the referrers tag
    (none when there is no tag yet)."""
    if client.referrers(repo, subject) is not None:
        return None
    tag = referrers_tag(subject)
    index = client.find_manifest(repo, tag)
    return _manifests(index.raw, f"{repo}:{tag}") if index else []


def _put_tag(
    client: RegistryClient,
    repo: str,
    subject: str,
    manifests: Sequence[dict[str, Any]],
    entries: Sequence[dict[str, Any]],
) -> None:
    """The referrers tag listing ``manifests`` (what it held) and ``entries`` (new ones)."""
    added = {entry["digest"] for entry in entries}
    kept = [m for m in manifests if m.get("digest") not in added] + list(entries)
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": kept}
    client.put_manifest(repo, referrers_tag(subject), json.dumps(document).encode(), OCI_INDEX)


def _manifests(raw: bytes, where: str) -> list[dict[str, Any]]:
    entries = _json(raw, where).get("manifests")
    if not isinstance(entries, list):
        raise EnvironmentFault(
            f"{where}: not an OCI index of referrers.",
            hint="The tag is the referrers tag of a digest; delete whatever else is there.",
        )
    return [entry for entry in entries if isinstance(entry, dict)]


def _json(raw: bytes, where: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise EnvironmentFault(f"{where}: not a JSON manifest.", hint="Check the registry.")
    return document


def _descriptor(descriptor: Descriptor) -> dict[str, Any]:
    return {
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest,
        "size": descriptor.size,
    }
