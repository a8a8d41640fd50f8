"""Provenance and an SBOM attached to a published digest, once.

The digest's referrers are read first: a digest that has them already (a retag, a promote of
a digest built before) gets nothing new. A promote into another repository attaches the same
statements there, byte for byte, so they keep their digests.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from pipeline_kit.adapters.registry.client import (
    Descriptor,
    Manifest,
    RegistryClient,
    in_parallel,
)
from pipeline_kit.adapters.registry.references import platform_entries
from pipeline_kit.attest.inventory import NoSbom, Parent, image_inventory
from pipeline_kit.attest.provenance import BuildFacts, slsa_predicate
from pipeline_kit.attest.sbom import package_count, package_state, spdx_document
from pipeline_kit.attest.statement import (
    ARTIFACT_TYPE,
    PREDICATE_ANNOTATION,
    PROVENANCE,
    SPDX,
    BadStatement,
    read_statement,
    statement,
    subject_digests,
)
from pipeline_kit.publish.referrers import (
    CREATED,
    attach,
    attach_all,
    listed,
    start_attach,
    subject_of,
)


@dataclass(frozen=True)
class AttestSettings:
    """The config's ``attest`` section."""

    provenance: bool = True
    sbom: bool = True

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> AttestSettings:
        return cls(bool(section.get("provenance", True)), bool(section.get("sbom", True)))

    @property
    def any(self) -> bool:
        return self.provenance or self.sbom


@dataclass(frozen=True)
class Attested:
    """What a digest carries once attested: each artifact's manifest digest."""

    provenance: str | None
    sbom: str | None
    attached: tuple[str, ...]  # the predicate types attached by this run (the rest were there)
    packages: int | None = None
    layers_read: int = 0
    sbom_from: str | None = None  # the parent whose SBOM this one extends
    seconds: float = 0.0
    no_sbom: str | None = None  # why no SBOM could be made (its layers cannot be read)

    def to_json(self) -> dict[str, Any]:
        return {
            "provenance": self.provenance,
            "sbom": self.sbom,
            "attached": [_NAMES[t] for t in self.attached],
            "packages": self.packages,
            "layers_read": self.layers_read,
            "sbom_from": self.sbom_from,
            "seconds": self.seconds,
            **({"no_sbom": self.no_sbom} if self.no_sbom else {}),
        }


_NAMES = {PROVENANCE: "provenance", SPDX: "sbom"}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def attest(
    client: RegistryClient,
    repo: str,
    digest: str,
    facts: BuildFacts,
    settings: AttestSettings,
    *,
    parent: str | None = None,  # repository@digest whose SBOM this image extends
    copy_from: str | None = None,  # another repository of the registry that may have them
    parent_read: Callable[[], Parent | None] | None = None,  # read_parent, already going
    known: Mapping[str, Manifest] | None = None,  # manifests being published, by digest
    subject_ready: Callable[[], None] | None = None,  # returns once ``known`` are all in
) -> Attested:
    """Attach what ``settings`` asks for and ``repo@digest`` lacks.

    The reads that do not depend on each other go side by side (the digest's referrers, its
    manifest, the parent's SBOM), and both statements are attached in one round: an append
    publishes in a fraction of a second, and its attestations should not take longer.

    The parent's SBOM does not depend on the new digest: a caller that knows the parent
    early starts ``read_parent`` then (``parent_read``), and its round trips overlap the
    caller's own.

    A caller that knows the manifests it is publishing (an append) passes them as ``known``
    and attests while they go up: what the attach needs first (upload sessions, the
    referrers tag's read) is set going at once, the statements are made and
    their blobs uploaded beside the image's, and only their manifests wait for
    ``subject_ready`` (the spec has registries accept a referrer before its subject, but
    GitLab's refused one). A layer the client does not hold is read from the registry after
    ``subject_ready`` too.
    """
    started = time.monotonic()
    manifest = (known or {}).get(digest)
    ahead = None
    if manifest is not None:  # being published: what the attach needs first goes now
        count = int(settings.provenance) + int(settings.sbom and not manifest.is_index)
        ahead = start_attach(client, repo, digest, count)
    reads: list[Callable[[], Any]] = [partial(attestations, client, repo, digest)]
    if manifest is None:
        reads.append(partial(client.get_manifest, repo, digest))
    if settings.sbom and parent:
        reads.append(parent_read or partial(read_parent, client, parent))
    found, *rest = in_parallel(reads)
    if manifest is None:
        manifest, *rest = rest
    parents = rest
    if copy_from and copy_from != repo:
        found = {**_copied(client, copy_from, repo, digest, found), **found}
    subject = Descriptor(manifest.media_type, digest, len(manifest.raw))
    statements: list[tuple[str, bytes]] = []
    if settings.provenance and PROVENANCE not in found:
        data = statement(facts.image, digest, PROVENANCE, slsa_predicate(facts))
        statements.append((PROVENANCE, data))
    packages, layers_read, sbom_from, no_sbom = None, 0, None, None
    if settings.sbom and SPDX not in found and not manifest.is_index:
        layers = list(json.loads(manifest.raw).get("layers") or [])
        try:
            inventory = image_inventory(
                client, repo, layers, parents[0] if parents else None, subject_ready
            )
        except NoSbom as exc:  # the image is published; verify will say it has no SBOM
            no_sbom = str(exc)
        else:
            document = spdx_document(facts.image, digest, inventory.state, now())
            statements.append((SPDX, statement(facts.image, digest, SPDX, document)))
            packages, layers_read = package_count(document), inventory.layers_read
            sbom_from = inventory.from_parent
    if statements:
        moment = now()
        specs = [(ARTIFACT_TYPE, data, moment, {PREDICATE_ANNOTATION: predicate})
                 for predicate, data in statements]  # fmt: skip
        digests = attach_all(client, repo, subject, specs, subject_ready, ahead)
        found.update(zip([predicate for predicate, _ in statements], digests, strict=True))
    attached = tuple(predicate for predicate, _ in statements)
    if manifest.is_index:  # each platform's image gets its own, as it is what runs
        for entry in platform_entries(json.loads(manifest.raw)):
            child = attest(client, repo, str(entry["digest"]), facts, settings, copy_from=copy_from,
                           known=known, subject_ready=subject_ready)  # fmt: skip
            layers_read += child.layers_read
            packages = (packages or 0) + (child.packages or 0)
            no_sbom = no_sbom or child.no_sbom
    return Attested(found.get(PROVENANCE), found.get(SPDX), attached, packages, layers_read,
                    sbom_from, round(time.monotonic() - started, 3), no_sbom)  # fmt: skip


def attestations(client: RegistryClient, repo: str, digest: str) -> dict[str, str]:
    """The kit's kind of attestations ``repo@digest`` has: predicate type -> manifest digest."""
    found: dict[str, str] = {}
    for entry in listed(client, repo, digest):
        if entry.get("artifactType") != ARTIFACT_TYPE:
            continue
        predicate = (entry.get("annotations") or {}).get(PREDICATE_ANNOTATION)
        if predicate in (PROVENANCE, SPDX):
            found.setdefault(str(predicate), str(entry.get("digest", "")))
    return found


def read_attestation(client: RegistryClient, repo: str, manifest_digest: str) -> bytes:
    """The one blob of an attestation's manifest (the client checks its digest)."""
    manifest = json.loads(client.get_manifest(repo, manifest_digest).raw)
    (layer,) = manifest.get("layers") or [{}]
    return client.get_blob(repo, str(layer.get("digest", "")))


def _copied(
    client: RegistryClient, source: str, repo: str, digest: str, have: Mapping[str, str]
) -> dict[str, str]:
    """The source repository's attestations of ``digest`` that ``repo`` lacks, attached to it
    unchanged (same bytes, same creation time: the same manifest digests)."""
    copied: dict[str, str] = {}
    wanted = {k: v for k, v in attestations(client, source, digest).items() if k not in have}
    if not wanted:
        return copied
    subject = subject_of(client, repo, digest)
    for predicate, manifest_digest in wanted.items():
        manifest = json.loads(client.get_manifest(source, manifest_digest).raw)
        created = str((manifest.get("annotations") or {}).get(CREATED, now()))
        data = read_attestation(client, source, manifest_digest)
        copied[predicate] = attach(client, repo, subject, ARTIFACT_TYPE, data, created,
                                   {PREDICATE_ANNOTATION: predicate})  # fmt: skip
    return copied


def _layers(client: RegistryClient, repo: str, digest: str) -> list[dict[str, Any]] | None:
    """The image's layers; None for a multi-platform index, which has no layers of its own."""
    manifest = client.get_manifest(repo, digest)
    if manifest.is_index:
        return None
    return list(json.loads(manifest.raw).get("layers") or [])


def read_parent(client: RegistryClient, reference: str | None) -> Parent | None:
    """The parent's layers and the databases its SBOM lists (None: it has no SBOM)."""
    if not reference:
        return None
    repo, _, digest = reference.rpartition("@")
    reads: list[Callable[[], Any]] = [
        partial(attestations, client, repo, digest),
        partial(_layers, client, repo, digest),
    ]
    found, layers = in_parallel(reads)
    if SPDX not in found or layers is None:
        return None
    try:
        document = read_statement(read_attestation(client, repo, found[SPDX]))
    except BadStatement:
        return None
    state = package_state(document.get("predicate") or {})
    if state is None or digest not in subject_digests(document):
        return None
    return Parent(reference, layers, state)
