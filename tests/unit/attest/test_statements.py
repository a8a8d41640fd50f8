"""The statements' shape, checked against in-toto Statement v1 and SLSA provenance v1 and an
SPDX 2.3 document schema, and the SBOM read back as the databases it came from.

The SPDX rules are checked with the schema in ``tests/fixtures/spdx-2.3-subset.schema.json``:
the required fields and value patterns of the SPDX 2.3 JSON schema for what the kit writes
(document, packages, external references, relationships), written for these tests.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from pipeline_kit import __version__
from pipeline_kit.attest.packages import Package
from pipeline_kit.attest.provenance import BUILD_TYPE, BuildFacts, slsa_predicate
from pipeline_kit.attest.sbom import package_count, package_state, spdx_document
from pipeline_kit.attest.statement import (
    PROVENANCE,
    SPDX,
    BadStatement,
    read_statement,
    statement,
    subject_digests,
)
from tests.support import REPO

DIGEST = "sha256:" + "ab" * 32
IMAGE = "registry.example.com/team/llm"
SPDX_SCHEMA = json.loads((REPO / "tests/fixtures/spdx-2.3-subset.schema.json").read_text())
STATE = {
    "var/lib/dpkg/status": (
        Package("deb", "libc6", "2.36-9+deb12u4", "var/lib/dpkg/status", "amd64"),
    ),
    "opt/venv/lib/python3.11/site-packages/numpy-2.1.3.dist-info/METADATA": (
        Package(
            "pypi",
            "numpy",
            "2.1.3",
            "opt/venv/lib/python3.11/site-packages/numpy-2.1.3.dist-info/METADATA",
        ),
    ),
    "opt/conda/conda-meta/zlib-1.3-h_0.json": (
        Package("conda", "zlib", "1.3", "opt/conda/conda-meta/zlib-1.3-h_0.json", "h_0"),
    ),
}


def check_statement_v1(document: dict[str, Any]) -> None:
    """in-toto Statement v1: _type, a non-empty subject of name + digest, predicateType a
    URI, predicate an object."""
    assert document["_type"] == "https://in-toto.io/Statement/v1"
    assert document["subject"] and all(
        isinstance(s["name"], str) and s["digest"] and all(
            isinstance(v, str) and v == v.lower() for v in s["digest"].values()
        )
        for s in document["subject"]
    )  # fmt: skip
    assert document["predicateType"].startswith("https://")
    assert isinstance(document["predicate"], dict)


def check_slsa_v1(predicate: dict[str, Any]) -> None:
    """SLSA provenance v1: buildDefinition (buildType, externalParameters required;
    resolvedDependencies descriptors each with uri or digest) and runDetails.builder.id."""
    definition = predicate["buildDefinition"]
    assert definition["buildType"].startswith("https://")
    assert isinstance(definition["externalParameters"], dict)
    for dependency in definition.get("resolvedDependencies", []):
        assert dependency.get("uri") or dependency.get("digest")
    run = predicate["runDetails"]
    assert run["builder"]["id"].startswith("https://")
    for key in ("startedOn", "finishedOn"):
        if key in run.get("metadata", {}):
            assert run["metadata"][key].endswith("Z")


def test_provenance_names_what_the_build_came_from_and_no_secret_value() -> None:
    facts = BuildFacts(
        image=IMAGE, strategy="append", started="2026-12-06T01:00:00Z",
        finished="2026-12-06T01:00:01Z", repository_url="https://git.example.com/team/llm",
        revision="c0ffee" * 6 + "beef", dockerfile="Dockerfile", dockerfile_sha256="12" * 32,
        build_args={"BASE_IMAGE": "debian:bookworm"}, target="code",
        parent=f"{IMAGE}@sha256:{'cd' * 32}", secrets=("hf_token",),
        run_url="https://git.example.com/team/llm/-/jobs/7",
    )  # fmt: skip
    document = read_statement(statement(IMAGE, DIGEST, PROVENANCE, slsa_predicate(facts)))
    check_statement_v1(document)
    check_slsa_v1(document["predicate"])
    assert subject_digests(document) == [DIGEST]
    predicate = document["predicate"]
    external = predicate["buildDefinition"]["externalParameters"]
    assert predicate["buildDefinition"]["buildType"] == BUILD_TYPE
    assert external["strategy"] == "append" and external["parent"].endswith("cd" * 32)
    assert external["dockerfile"] == {"path": "Dockerfile", "sha256": "12" * 32}
    assert external["buildArgs"] == {"BASE_IMAGE": "debian:bookworm"}
    assert predicate["buildDefinition"]["internalParameters"] == {"secrets": ["hf_token"]}
    dependencies = predicate["buildDefinition"]["resolvedDependencies"]
    assert dependencies[0]["digest"] == {"gitCommit": facts.revision}
    assert dependencies[1]["digest"] == {"sha256": "cd" * 32}
    assert predicate["runDetails"]["builder"]["id"].endswith(f"@{__version__}")
    assert predicate["runDetails"]["metadata"]["invocationId"] == facts.run_url


def test_the_sbom_is_spdx_2_3_and_reads_back_as_its_databases() -> None:
    document = spdx_document(IMAGE, DIGEST, STATE, "2026-12-06T01:00:00Z")
    jsonschema.validate(document, SPDX_SCHEMA)
    wrapped = read_statement(statement(IMAGE, DIGEST, SPDX, document))
    check_statement_v1(wrapped)
    assert package_count(document) == 3
    purls = {p["externalRefs"][0]["referenceLocator"] for p in document["packages"][1:]}
    assert purls == {"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64",
                     "pkg:pypi/numpy@2.1.3", "pkg:conda/zlib@1.3?build=h_0"}  # fmt: skip
    assert package_state(document) == STATE


def test_an_sbom_without_the_kits_source_info_is_not_read_back() -> None:
    document = spdx_document(IMAGE, DIGEST, STATE, "2026-12-06T01:00:00Z")
    del document["packages"][1]["sourceInfo"]
    assert package_state(document) is None


@pytest.mark.parametrize(
    "data",
    [b"not json", b'{"_type": "https://in-toto.io/Statement/v0.1"}',
     b'{"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicateType": "x"}',
     b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a"}],'
     b' "predicateType": "x"}'],
)  # fmt: skip
def test_what_is_not_a_statement_v1_is_refused(data: bytes) -> None:
    with pytest.raises(BadStatement):
        read_statement(data)
