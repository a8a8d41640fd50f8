"""SLSA provenance v1 for a published digest: how the kit made it, from what, in which run.

Everything in it comes from facts a build already holds (the checkout, the plan, the CI
context); nothing is read from the environment here. Build secrets appear by id only, never by
value, and no environment variable is copied in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_kit import __version__

BUILD_TYPE = (
    "https://github.com/pipeline-kit/pipeline-kit/blob/main/docs/attestations.md#build-type"
)
BUILDER_ID = "https://github.com/pipeline-kit/pipeline-kit"
STRATEGIES = ("append", "retag", "rebase", "promote", "merge")  # and a builder's name: kaniko, ...


@dataclass(frozen=True)
class BuildFacts:
    """What a published digest came from, as far as the kit knows it."""

    image: str  # registry/repository
    strategy: str  # a builder's name, or one of STRATEGIES
    started: str  # RFC 3339
    finished: str
    repository_url: str | None = None
    revision: str | None = None
    dockerfile: str | None = None  # path in the repository
    dockerfile_sha256: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    parent: str | None = None  # repository@digest appended to, rebased or promoted from
    base_images: tuple[tuple[str, str | None], ...] = ()  # (reference, digest if known)
    secrets: tuple[str, ...] = ()  # ids only
    run_url: str | None = None


def slsa_predicate(facts: BuildFacts) -> dict[str, Any]:
    """The predicate of https://slsa.dev/provenance/v1."""
    external: dict[str, Any] = {"strategy": facts.strategy}
    if facts.repository_url or facts.revision:
        external["source"] = _present(repository=facts.repository_url, revision=facts.revision)
    if facts.dockerfile:
        external["dockerfile"] = _present(path=facts.dockerfile, sha256=facts.dockerfile_sha256)
    if facts.build_args:
        external["buildArgs"] = dict(sorted(facts.build_args.items()))
    if facts.target:
        external["target"] = facts.target
    if facts.parent:
        external["parent"] = facts.parent
    internal = {"secrets": list(facts.secrets)} if facts.secrets else None
    definition: dict[str, Any] = {
        "buildType": BUILD_TYPE,
        "externalParameters": external,
        "resolvedDependencies": _dependencies(facts),
    }
    if internal:
        definition["internalParameters"] = internal
    metadata = _present(invocationId=facts.run_url, startedOn=facts.started,
                        finishedOn=facts.finished)  # fmt: skip
    return {
        "buildDefinition": definition,
        "runDetails": {
            "builder": {"id": f"{BUILDER_ID}@{__version__}",
                        "version": {"pipeline-kit": __version__}},
            "metadata": metadata,
        },
    }  # fmt: skip


def _dependencies(facts: BuildFacts) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if facts.revision:
        source: dict[str, Any] = {"digest": {"gitCommit": facts.revision}}
        if facts.repository_url:
            source["uri"] = f"git+{facts.repository_url}@{facts.revision}"
        found.append(source)
    if facts.parent:
        repository, _, parent_digest = facts.parent.rpartition("@")
        found.append(_image(repository, parent_digest, "parent"))
    for reference, digest in facts.base_images:
        if digest:
            found.append(_image(reference, digest, "base"))
        else:
            found.append({"uri": f"oci://{reference}", "name": "base"})
    return found


def _image(reference: str, digest: str, name: str) -> dict[str, Any]:
    repository = reference.split("@", 1)[0]
    return {
        "uri": f"oci://{repository}@{digest}",
        "digest": {"sha256": digest.removeprefix("sha256:")},
        "name": name,
    }


def _present(**values: str | None) -> dict[str, str]:
    return {key: value for key, value in values.items() if value}
