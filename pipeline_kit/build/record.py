"""What a build did, as CI reads it: one frozen record, written as JSON by ``to_json``.

The JSON is a contract (the action's outputs, the GitLab dotenv report, scripts): its keys and
their order stay as they are; ``append`` appears only when the plan appended, ``children`` only
when the image is a multi-platform index, ``commands`` and ``publish`` only on a dry run,
``attestations`` only when the digest was attested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline_kit.ci.trust import Trust


@dataclass(frozen=True)
class LayerState:
    changed: bool
    key: str


@dataclass(frozen=True)
class BuildRecord:
    image: str
    tags: tuple[str, ...]
    references: tuple[str, ...]
    strategy: str  # "retag", "rebase", "append" or "builder"
    reason: str
    image_key: str
    rebuild_from: str | None
    image_changed: bool
    layers: Mapping[str, LayerState]
    head: str
    trust: Trust
    digest: str | None = None
    builder: str | None = None
    fallback: str | None = None  # why append could not publish the change (builder only)
    previous: str | None = None  # repository@digest appended to
    bytes_uploaded: int | None = None  # None where a builder pushed by itself (Kaniko)
    append: Mapping[str, Any] | None = None  # the append plan's summary
    rebase: Mapping[str, Any] | None = None  # the rebase plan's summary
    commands: Sequence[Sequence[str]] | None = None  # dry run: the builder's argv lists
    publish: Sequence[str] | None = None  # dry run: the registry operations
    # dry run without the registry: why, and each lookup not done with what it would decide
    offline: Mapping[str, Any] | None = None
    # the provenance's and the SBOM's manifest digests (attest.attach.Attested.to_json)
    attestations: Mapping[str, Any] | None = None
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds per phase, and total
    children: Mapping[str, str] | None = None  # an index: each platform's image digest

    def published(self, digest: str | None, bytes_uploaded: int | None) -> BuildRecord:
        return replace(self, digest=digest, bytes_uploaded=bytes_uploaded)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "image": self.image,
            "digest": self.digest,
            "tags": list(self.tags),
            "references": list(self.references),
            "strategy": self.strategy,
            "builder": self.builder,
            "reason": self.reason,
            "fallback": self.fallback,
            "previous": self.previous,
            "bytes_uploaded": self.bytes_uploaded,
            "image_key": self.image_key,
            "rebuild_from": self.rebuild_from,
            "image_changed": self.image_changed,
            "layers": {
                name: {"changed": layer.changed, "key": layer.key}
                for name, layer in self.layers.items()
            },
            "head": self.head,
            "trust": {
                "trusted": self.trust.trusted,
                "why": self.trust.why,
                "records": self.trust.key_prefix,
            },
        }
        if self.append is not None:
            document["append"] = dict(self.append)
        if self.rebase is not None:
            document["rebase"] = dict(self.rebase)
        if self.children is not None:
            document["children"] = dict(self.children)
        if self.commands is not None:
            document["commands"] = [list(argv) for argv in self.commands]
        if self.publish is not None:
            document["publish"] = list(self.publish)
        if self.offline is not None:
            document["offline"] = dict(self.offline)
        if self.attestations is not None:
            document["attestations"] = dict(self.attestations)
        document["timings"] = dict(self.timings)
        return document
