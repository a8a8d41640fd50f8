"""The image's packages as an SPDX 2.3 JSON document, and the same read back.

The document is the predicate of an in-toto statement (predicate type
``https://spdx.dev/Document``), not an artifact of its own type (``application/spdx+json``):
the statement names the image digest inside the document itself, so the SBOM cannot be moved
to another image unnoticed, and ``verify`` checks it as it checks the provenance.

Each package records, in ``sourceInfo``, the database file that listed it: an append reads the
previous image's SBOM back as those databases and lays only the new layers over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from pipeline_kit import __version__
from pipeline_kit.attest.layers import PackageState, packages_of
from pipeline_kit.attest.packages import Package

SOURCE_PREFIX = "package database: "
_KINDS = ("deb", "pypi", "conda")


def spdx_document(image: str, digest: str, state: PackageState, created: str) -> dict[str, Any]:
    """SPDX 2.3: the image as the described package, containing every package found."""
    packages = packages_of(state)
    root = "SPDXRef-Image"
    described: list[dict[str, Any]] = [{
        "name": image,
        "SPDXID": root,
        "versionInfo": digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": digest.removeprefix("sha256:")}],
    }]  # fmt: skip
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
         "relatedSpdxElement": root},
    ]  # fmt: skip
    for number, package in enumerate(packages, start=1):
        spdx_id = f"SPDXRef-Package-{package.kind}-{number}"
        described.append({
            "name": package.name,
            "SPDXID": spdx_id,
            "versionInfo": package.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "sourceInfo": SOURCE_PREFIX + package.database,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": package.purl,
            }],
        })  # fmt: skip
        relationships.append(
            {"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": spdx_id}
        )
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image}@{digest}",
        "documentNamespace": f"https://{image}/spdx/{digest.removeprefix('sha256:')}",
        "creationInfo": {"created": created, "creators": [f"Tool: pipeline-kit-{__version__}"]},
        "packages": described,
        "relationships": relationships,
    }


def package_state(document: Mapping[str, Any]) -> dict[str, tuple[Package, ...]] | None:
    """The databases an SBOM of the kit's lists, or None when it is not one (no
    ``sourceInfo`` to say where its packages came from)."""
    state: dict[str, list[Package]] = {}
    for entry in document.get("packages") or []:
        if not isinstance(entry, dict) or entry.get("SPDXID") == "SPDXRef-Image":
            continue
        source = str(entry.get("sourceInfo", ""))
        purl = _purl(entry)
        if not source.startswith(SOURCE_PREFIX) or purl is None:
            return None
        kind, qualifiers = purl
        database = source[len(SOURCE_PREFIX) :]
        arch = qualifiers.get("arch") or qualifiers.get("build") or ""
        package = Package(kind, str(entry.get("name", "")), str(entry.get("versionInfo", "")),
                          database, arch)  # fmt: skip
        state.setdefault(database, []).append(package)
    return {path: tuple(found) for path, found in state.items()}


def package_count(document: Mapping[str, Any]) -> int:
    """The packages an SBOM lists, the image itself not counted."""
    entries: Sequence[Any] = document.get("packages") or []
    return sum(1 for e in entries if isinstance(e, dict) and e.get("SPDXID") != "SPDXRef-Image")


def _purl(entry: Mapping[str, Any]) -> tuple[str, dict[str, str]] | None:
    for ref in entry.get("externalRefs") or []:
        locator = str(ref.get("referenceLocator", "")) if isinstance(ref, dict) else ""
        if ref.get("referenceType") != "purl" or not locator.startswith("pkg:"):
            continue
        kind = locator[4:].split("/", 1)[0]
        if kind not in _KINDS:
            return None
        _, _, query = locator.partition("?")
        pairs = (pair.partition("=") for pair in query.split("&") if pair)
        return kind, {key: unquote(value) for key, _, value in pairs}
    return None
