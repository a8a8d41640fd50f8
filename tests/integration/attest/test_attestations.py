"""Provenance and SBOM on every digest the kit publishes, read back from a real registry.

The example service (examples/llm-service, built offline with buildah: ``example_image``) is
the builder's digest; a code change appended onto it, the same commit built again (a retag)
and a promote are the others. The registry is distribution 2.x, without the referrers API:
the kit keeps the referrers tag ``sha256-<hex>``. ``verify`` is run as the CLI; it must pass
on each published digest and fail (exit 1, naming the problem) on a digest without
attestations, on statements about another digest, and on a blob changed in the registry's
storage. The statements' shape is checked against in-toto Statement v1, SLSA provenance v1 and
the SPDX 2.3 rules in ``tests/fixtures/spdx-2.3-subset.schema.json`` (written for these tests
from the SPDX 2.3 JSON schema's required fields and patterns).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.attest.attach import AttestSettings, attest, attestations, read_attestation
from pipeline_kit.attest.provenance import BuildFacts
from pipeline_kit.attest.statement import ARTIFACT_TYPE, PREDICATE_ANNOTATION, PROVENANCE, SPDX
from pipeline_kit.publish.referrers import attach, subject_of
from tests.support import REPO
from tests.support.example_image import BUILD_TIMEOUT_S, EXAMPLE, BuiltExample
from tests.support.gitrepo import GitRepo, cli
from tests.support.services.registry import RegistryServer

SPDX_SCHEMA = json.loads((REPO / "tests/fixtures/spdx-2.3-subset.schema.json").read_text())
TINY = "attest/tiny"


def pins() -> dict[str, str]:
    """The example's pinned Python packages, from its requirements.txt."""
    text = (EXAMPLE / "requirements.txt").read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.MULTILINE))


def client(registry: RegistryServer) -> RegistryClient:
    return RegistryClient(registry.host)


def statement_of(
    registry: RegistryServer, repo: str, digest: str, predicate: str
) -> dict[str, Any]:
    found = attestations(client(registry), repo, digest)
    assert predicate in found, f"{repo}@{digest} has no {predicate}: {found}"
    document: dict[str, Any] = json.loads(
        read_attestation(client(registry), repo, found[predicate])
    )
    assert document["_type"] == "https://in-toto.io/Statement/v1"
    assert document["subject"][0]["digest"] == {"sha256": digest.removeprefix("sha256:")}
    assert document["predicateType"] == predicate
    return document


def packages(sbom: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(purl type, name) -> version, the image package left out."""
    found = {}
    for entry in sbom["predicate"]["packages"][1:]:
        purl = entry["externalRefs"][0]["referenceLocator"]
        found[(purl[4:].split("/", 1)[0], entry["name"].lower())] = entry["versionInfo"]
    return found


def verify(image: str, cwd: Path) -> tuple[int, dict[str, Any], str]:
    result = cli("verify", image, "--format", "json", cwd=cwd)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def repository_of(example: BuiltExample) -> str:
    return example.repository.split("/", 1)[1]


@pytest.fixture(scope="module")
def appended(
    example_image: BuiltExample, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A code change appended onto the example image, from a clone of its repository; the
    change brings a vendored package's metadata, so the SBOM has something new to list."""
    path = tmp_path_factory.mktemp("attest-append") / "llm-service"
    shutil.copytree(example_image.repo.path, path)
    repo = GitRepo(path)
    repo.commit({
        "server/vendored/site-packages/tinyvendor-1.2.3.dist-info/METADATA":
            "Metadata-Version: 2.1\nName: tinyvendor\nVersion: 1.2.3\n",
        "server/greeting.txt": "hello from an appended layer\n",
    }, message="code change")  # fmt: skip
    result = cli("build", "--format", "json", cwd=path, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    record: dict[str, Any] = json.loads(result.stdout)
    record["repo"] = path
    return record


def test_the_builders_digest_has_an_sbom_of_its_packages_and_provenance(
    example_image: BuiltExample, registry: RegistryServer
) -> None:
    repo, digest = repository_of(example_image), example_image.digest
    sbom = statement_of(registry, repo, digest, SPDX)
    jsonschema.validate(sbom["predicate"], SPDX_SCHEMA)
    found = packages(sbom)
    for name, version in pins().items():
        assert found[("pypi", name.lower())] == version
    assert ("deb", "python3") in found and ("deb", "libc6") in found  # the base's dpkg status
    provenance = statement_of(registry, repo, digest, PROVENANCE)["predicate"]
    external = provenance["buildDefinition"]["externalParameters"]
    assert external["strategy"] == "buildah"
    assert external["source"]["revision"] == example_image.repo.head()
    assert (
        external["dockerfile"]["sha256"]
        == hashlib.sha256((example_image.repo.path / "Dockerfile").read_bytes()).hexdigest()
    )
    assert "BASE_IMAGE" in external["buildArgs"]
    dependencies = provenance["buildDefinition"]["resolvedDependencies"]
    base = [d for d in dependencies if d.get("name") == "base"]
    assert base and base[0]["digest"]["sha256"]  # the test registry's base, by digest
    code, result, _ = verify(example_image.image, example_image.repo.path)
    assert code == 0, result["problems"]
    assert {a["predicateType"] for a in result["attestations"]} == {PROVENANCE, SPDX}


def test_an_append_extends_its_parents_sbom_with_the_new_layers_only(
    example_image: BuiltExample, registry: RegistryServer, appended: dict[str, Any]
) -> None:
    assert appended["strategy"] == "append", appended["reason"]
    repo, digest = repository_of(example_image), appended["digest"]
    summary = appended["attestations"]
    assert summary["attached"] == ["provenance", "sbom"]
    assert summary["sbom_from"] == f"{repo}@{example_image.digest}"
    manifest_layers = appended["append"]["kept_layers"] + appended["append"]["new_layers"]
    assert summary["layers_read"] < manifest_layers  # the parent's layers were not read again
    parent = packages(statement_of(registry, repo, example_image.digest, SPDX))
    child = statement_of(registry, repo, digest, SPDX)
    jsonschema.validate(child["predicate"], SPDX_SCHEMA)
    assert packages(child) == {**parent, ("pypi", "tinyvendor"): "1.2.3"}
    provenance = statement_of(registry, repo, digest, PROVENANCE)["predicate"]
    external = provenance["buildDefinition"]["externalParameters"]
    assert external["strategy"] == "append"
    assert external["parent"] == f"{registry.host}/{repo}@{example_image.digest}"
    parent_dependency = [
        d
        for d in provenance["buildDefinition"]["resolvedDependencies"]
        if d.get("name") == "parent"
    ]
    assert parent_dependency[0]["digest"] == {
        "sha256": example_image.digest.removeprefix("sha256:")
    }
    code, result, _ = verify(f"{example_image.repository}@{digest}", appended["repo"])
    assert code == 0, result["problems"]
    print(f"append: attest {appended['timings'].get('attest')}s of {appended['timings']['total']}s")


def test_a_retag_and_a_promote_attach_nothing_new(
    example_image: BuiltExample, registry: RegistryServer, appended: dict[str, Any]
) -> None:
    path, digest = appended["repo"], appended["digest"]
    again = cli("build", "--format", "json", cwd=path, timeout=BUILD_TIMEOUT_S)
    assert again.returncode == 0, again.stderr[-3000:]
    record = json.loads(again.stdout)
    assert record["strategy"] == "retag" and record["digest"] == digest
    assert record["attestations"]["attached"] == []
    assert record["attestations"]["sbom"] == appended["attestations"]["sbom"]
    image = f"{example_image.repository}@{digest}"
    same_repo = cli("promote", image, "attest-stable", "--format", "json", cwd=path)
    assert same_repo.returncode == 0, same_repo.stderr
    assert json.loads(same_repo.stdout)["attestations"][0]["attached"] == []
    other = f"{registry.host}/attest/promoted:stable"
    promoted = cli("promote", image, other, "--format", "json", cwd=path)
    assert promoted.returncode == 0, promoted.stderr
    (entry,) = json.loads(promoted.stdout)["attestations"]
    # The same statements, attached unchanged: the same manifest digests in the other repository.
    assert entry["attached"] == [] and entry["sbom"] == appended["attestations"]["sbom"]
    assert entry["provenance"] == appended["attestations"]["provenance"]
    code, result, _ = verify(f"{registry.host}/attest/promoted@{digest}", path)
    assert code == 0, result["problems"]
    listed = attestations(client(registry), "attest/promoted", digest)
    assert sorted(listed) == sorted([PROVENANCE, SPDX])


def tiny_image(registry: RegistryServer, tag: str) -> str:
    """An image of one small layer, pushed by the registry client: no attestations."""
    import gzip
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = tag.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    raw_layer = buffer.getvalue()
    layer = gzip.compress(raw_layer, mtime=0)
    diff_id = f"sha256:{hashlib.sha256(raw_layer).hexdigest()}"
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()  # fmt: skip
    registry_client = client(registry)
    blobs = []
    for data, kind in ((config, "config.v1+json"), (layer, "layer.v1.tar+gzip")):
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        registry_client.upload_missing_blob(TINY, data, digest)
        blobs.append({"mediaType": f"application/vnd.oci.image.{kind}", "digest": digest,
                      "size": len(data)})  # fmt: skip
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blobs[0], "layers": blobs[1:],
    }).encode()  # fmt: skip
    registry_client.put_manifest(TINY, tag, manifest, "application/vnd.oci.image.manifest.v1+json")
    return f"sha256:{hashlib.sha256(manifest).hexdigest()}"


def test_verify_fails_for_a_digest_without_attestations(
    registry: RegistryServer, tmp_path: Path
) -> None:
    digest = tiny_image(registry, "bare")
    code, result, _ = verify(f"{registry.host}/{TINY}@{digest}", tmp_path)
    assert code == 1
    assert any("no consistent provenance" in p for p in result["problems"])
    assert any("no consistent SBOM" in p for p in result["problems"])
    text = cli("verify", f"{registry.host}/{TINY}@{digest}", cwd=tmp_path)
    assert text.returncode == 1 and "NOT verified" in text.stdout


def test_verify_fails_for_statements_about_another_digest(
    example_image: BuiltExample, registry: RegistryServer, tmp_path: Path
) -> None:
    digest = tiny_image(registry, "borrowed")
    registry_client = client(registry)
    subject = subject_of(registry_client, TINY, digest)
    theirs = attestations(registry_client, repository_of(example_image), example_image.digest)
    for predicate, manifest in theirs.items():
        data = read_attestation(registry_client, repository_of(example_image), manifest)
        registry_client.upload_missing_blob(
            TINY, data, f"sha256:{hashlib.sha256(data).hexdigest()}"
        )
        attach(registry_client, TINY, subject, ARTIFACT_TYPE, data, "2026-12-06T00:00:00Z",
               {PREDICATE_ANNOTATION: predicate})  # fmt: skip
    code, result, _ = verify(f"{registry.host}/{TINY}@{digest}", tmp_path)
    assert code == 1
    assert any(f"is about {example_image.digest}, not {digest}" in p for p in result["problems"])


def test_verify_fails_for_a_blob_changed_in_the_registry(
    registry: RegistryServer, tmp_path: Path
) -> None:
    digest = tiny_image(registry, "tampered")
    facts = BuildFacts(image=f"{registry.host}/{TINY}", strategy="retag",
                       started="2026-12-06T00:00:00Z", finished="2026-12-06T00:00:01Z")  # fmt: skip
    attested = attest(client(registry), TINY, digest, facts, AttestSettings())
    assert attested.provenance and attested.sbom
    image = f"{registry.host}/{TINY}@{digest}"
    assert verify(image, tmp_path)[0] == 0
    manifest = json.loads(client(registry).get_manifest(TINY, attested.provenance).raw)
    blob = manifest["layers"][0]["digest"].removeprefix("sha256:")
    data = registry.workdir / "storage/docker/registry/v2/blobs/sha256" / blob[:2] / blob / "data"
    data.write_bytes(data.read_bytes().replace(b'"strategy":"retag"', b'"strategy":"buildx"'))
    code, result, _ = verify(image, tmp_path)
    assert code == 1
    assert any("does not match its digest" in p for p in result["problems"])
