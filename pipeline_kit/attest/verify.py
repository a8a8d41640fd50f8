"""Check the attestations of an image digest: present, about that digest, and intact.

For each in-toto artifact among the digest's referrers: its manifest names the digest as its
``subject``, its one blob has the digest and size its descriptor gives, the blob is an in-toto
Statement v1 whose ``subject`` names the digest, and its predicate type is the one the
manifest's annotation says, with the predicate's required parts there. The image passes when
it has a provenance and an SBOM and nothing inconsistent is attached. A multi-platform index
passes when it has a provenance and each platform's image it lists passes on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.adapters.registry.references import platform_entries, platform_name
from pipeline_kit.attest.sbom import package_count
from pipeline_kit.attest.statement import (
    ARTIFACT_TYPE,
    PREDICATE_ANNOTATION,
    PROVENANCE,
    SPDX,
    BadStatement,
    read_statement,
    subject_digests,
)
from pipeline_kit.errors import KitError
from pipeline_kit.publish.referrers import listed

EXPECTED = {PROVENANCE: "provenance", SPDX: "SBOM"}


@dataclass(frozen=True)
class Checked:
    """One attestation as read, and what is wrong with it (nothing: it is consistent)."""

    manifest: str  # the artifact's manifest digest
    predicate_type: str
    problems: tuple[str, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)  # what it says, for the report


@dataclass(frozen=True)
class Verification:
    image: str  # registry/repository@digest
    digest: str
    checked: tuple[Checked, ...]
    # a multi-platform index: each platform's image verified on its own (platform, result);
    # the index itself needs only a provenance, having no layers for an SBOM to list
    children: tuple[tuple[str, Verification], ...] = ()

    @property
    def problems(self) -> list[str]:
        found = [f"{c.manifest[:19]}: {p}" for c in self.checked for p in c.problems]
        required = {PROVENANCE: EXPECTED[PROVENANCE]} if self.children else EXPECTED
        for predicate, name in required.items():
            if not any(c.predicate_type == predicate and not c.problems for c in self.checked):
                found.append(f"no consistent {name} attestation ({predicate}) is attached")
        for platform, child in self.children:
            found += [f"{platform} ({child.digest[:19]}): {p}" for p in child.problems]
        return found

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "passed": self.passed,
            "problems": self.problems,
            "attestations": [
                {"manifest": c.manifest, "predicateType": c.predicate_type,
                 "problems": list(c.problems), **c.facts}
                for c in self.checked
            ],
            **({"children": {platform: child.to_json() for platform, child in self.children}}
               if self.children else {}),
        }  # fmt: skip


def verify(client: RegistryClient, repo: str, digest: str) -> Verification:
    entries = [e for e in listed(client, repo, digest) if e.get("artifactType") == ARTIFACT_TYPE]
    checked = tuple(_check(client, repo, digest, entry) for entry in entries)
    manifest = client.get_manifest(repo, digest)
    children: tuple[tuple[str, Verification], ...] = ()
    if manifest.is_index:
        children = tuple(
            (platform_name(entry.get("platform") or {}) or str(entry["digest"]),
             verify(client, repo, str(entry["digest"])))
            for entry in platform_entries(json.loads(manifest.raw))
        )  # fmt: skip
        if not children:
            missing = Checked(digest, "", ("an index that lists no platform's image",))
            checked = (*checked, missing)
    return Verification(f"{client.host}/{repo}@{digest}", digest, checked, children)


def _check(client: RegistryClient, repo: str, digest: str, entry: Mapping[str, Any]) -> Checked:
    manifest_digest = str(entry.get("digest", ""))
    said = str((entry.get("annotations") or {}).get(PREDICATE_ANNOTATION, ""))
    try:
        manifest = json.loads(client.get_manifest(repo, manifest_digest).raw)
        subject = (manifest.get("subject") or {}).get("digest")
        problems = [] if subject == digest else [f"its manifest's subject is {subject}"]
        said = str((manifest.get("annotations") or {}).get(PREDICATE_ANNOTATION, said))
        layers = manifest.get("layers") or []
        if len(layers) != 1:
            return Checked(manifest_digest, said, (*problems, f"{len(layers)} blobs, not one"))
        data = _blob(client, repo, layers[0])
    except KitError as exc:
        return Checked(manifest_digest, said, (f"reading it: {exc}",))
    if len(data) != layers[0].get("size"):
        problems.append(f"its blob has {len(data)} bytes, its descriptor says {layers[0]['size']}")
    try:
        document = read_statement(data)
    except BadStatement as exc:
        return Checked(manifest_digest, said, (*problems, f"not an in-toto Statement v1: {exc}"))
    predicate_type = str(document["predicateType"])
    if digest not in subject_digests(document):
        named = ", ".join(subject_digests(document))
        problems.append(f"its statement is about {named}, not {digest}")
    if predicate_type != said:
        problems.append(f"its statement's predicate type {predicate_type} is not {said}")
    if predicate_type not in EXPECTED:
        problems.append(f"predicate type {predicate_type} is not one the kit attaches")
    predicate = document.get("predicate") or {}
    problems += _predicate_problems(predicate_type, predicate)
    return Checked(
        manifest_digest, predicate_type, tuple(problems), _facts(predicate_type, predicate)
    )


def _blob(client: RegistryClient, repo: str, descriptor: Mapping[str, Any]) -> bytes:
    """The blob, read once (no retry: a mismatch is a finding, not a lost answer)."""
    with client.open_blob(repo, str(descriptor.get("digest", ""))) as stream:
        return stream.read()


def _predicate_problems(predicate_type: str, predicate: Mapping[str, Any]) -> list[str]:
    if predicate_type == PROVENANCE:
        definition = predicate.get("buildDefinition") or {}
        builder = (predicate.get("runDetails") or {}).get("builder") or {}
        missing = [name for name, value in (
            ("buildDefinition.buildType", definition.get("buildType")),
            ("buildDefinition.externalParameters", definition.get("externalParameters")),
            ("runDetails.builder.id", builder.get("id")),
        ) if not value]  # fmt: skip
        return [f"its provenance has no {name}" for name in missing]
    spdx = predicate.get("spdxVersion") == "SPDX-2.3"
    if predicate_type == SPDX and not (spdx and isinstance(predicate.get("packages"), list)):
        return ["its SBOM is not an SPDX 2.3 document with packages"]
    return []


def _facts(predicate_type: str, predicate: Mapping[str, Any]) -> dict[str, Any]:
    if predicate_type == PROVENANCE:
        external = (predicate.get("buildDefinition") or {}).get("externalParameters") or {}
        run = predicate.get("runDetails") or {}
        return {
            "builder": (run.get("builder") or {}).get("id"),
            "strategy": external.get("strategy"),
            "revision": (external.get("source") or {}).get("revision"),
            "parent": external.get("parent"),
            "run": (run.get("metadata") or {}).get("invocationId"),
        }
    if predicate_type == SPDX:
        return {"packages": package_count(predicate)}
    return {}
