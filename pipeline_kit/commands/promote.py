"""``pipeline-kit promote SRC TAG...``: point tags at SRC's digest by registry operations only."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline_kit.ci.context import DEFAULT_DOTENV
from pipeline_kit.errors import ExitCode

if TYPE_CHECKING:
    from pipeline_kit.adapters.registry.client import RegistryClient
    from pipeline_kit.adapters.registry.references import ImageRef


@dataclass(frozen=True)
class PromoteOptions:
    source: str  # repo:tag or repo@sha256:...
    targets: Sequence[str]  # tag (same repository) or repo:tag
    insecure_registries: tuple[str, ...] = ()
    format: str = "text"
    environ: Mapping[str, str] = field(default_factory=dict)
    dotenv: Path = DEFAULT_DOTENV  # relative to the working directory
    attest_provenance: bool = True  # the config's attest section
    attest_sbom: bool = True


def run(options: PromoteOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    from pipeline_kit.adapters.registry.client import RegistryClient
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.publish.retag import point_tags
    from pipeline_kit.report.outputs import check_destination, export, record_json

    check_destination(options.format, options.environ)
    source = ImageRef.parse(options.source)
    targets = [ImageRef.parse(t) if "/" in t else source.with_tag(t) for t in options.targets]
    client = RegistryClient.connect(
        source.registry, options.environ, options.insecure_registries, log
    )
    digest = point_tags(client, source, targets)
    names = [str(t) for t in targets]
    record: dict[str, Any] = {"source": str(source), "digest": digest, "tags": names}
    attested = _attest(client, source, targets, digest, options)
    if attested:
        record["attestations"] = attested
    for entry in attested:
        if entry.get("no_sbom"):
            log.write(f"pipeline-kit: warning: {entry['repository']} without an SBOM: "
                      f"{entry['no_sbom']}\n")  # fmt: skip
    if options.format == "json":
        out.write(json.dumps(record) + "\n")
        return ExitCode.OK
    outputs = [("digest", digest), ("tags", ",".join(names)), record_json(record)]
    export(options.format, outputs, environ=options.environ, dotenv=options.dotenv)
    for name in names:
        out.write(f"{name} -> {digest}\n")
    for entry in attested:
        new = ", ".join(entry["attached"]) or "nothing new"
        out.write(f"{entry['repository']}: provenance {entry['provenance']}, "
                  f"sbom {entry['sbom']} (attached: {new})\n")  # fmt: skip
    return ExitCode.OK


def _attest(
    client: RegistryClient,
    source: ImageRef,
    targets: Sequence[ImageRef],
    digest: str,
    options: PromoteOptions,
) -> list[dict[str, Any]]:
    """Each target repository's attestations of the digest: those it has, else the source
    repository's (the same statements), else new ones (a promote of an image built without)."""
    from pipeline_kit.attest.attach import AttestSettings, attest, now
    from pipeline_kit.attest.provenance import BuildFacts

    settings = AttestSettings(options.attest_provenance, options.attest_sbom)
    if not settings.any:
        return []
    found = []
    for repository in dict.fromkeys(t.repository for t in targets):
        moment = now()
        parent = f"{source.registry}/{source.repository}@{digest}"
        facts = BuildFacts(
            image=f"{source.registry}/{repository}", strategy="promote", started=moment,
            finished=moment, parent=parent if repository != source.repository else None,
        )  # fmt: skip
        attested = attest(client, repository, digest, facts, settings, copy_from=source.repository)
        found.append({"repository": repository, **attested.to_json()})
    return found
