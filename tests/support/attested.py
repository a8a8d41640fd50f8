"""A builder's cold build checked for its attestations: the provenance names the builder, and
``verify`` passes on the digest."""

from __future__ import annotations

import json
from typing import Any

from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.attest.attach import attestations, read_attestation
from pipeline_kit.attest.statement import PROVENANCE
from pipeline_kit.attest.verify import verify
from tests.support.services.registry import RegistryServer


def assert_attested_by(
    registry: RegistryServer, repo: str, record: dict[str, Any], builder: str
) -> None:
    assert record["attestations"]["attached"] == ["provenance", "sbom"]
    client = RegistryClient(registry.host)
    found = attestations(client, repo, record["digest"])
    provenance = json.loads(read_attestation(client, repo, found[PROVENANCE]))
    assert provenance["predicate"]["buildDefinition"]["externalParameters"]["strategy"] == builder
    assert verify(client, repo, record["digest"]).passed
