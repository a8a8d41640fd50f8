"""Which cache entries to delete: older than the TTL and beyond the newest ``keep``.

Kaniko and buildah write one manifest per cached step into the cache repository (tagged by
the step's cache key) and never delete any; registries cap repositories (ECR: 10,000 tags).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CacheEntry:
    tag: str
    digest: str
    created: datetime | None  # None: unknown age, never deleted
    layers: frozenset[tuple[str, int]]  # (digest, size) of its layers
    children: frozenset[str] = frozenset()  # an index: the manifests it lists


@dataclass(frozen=True)
class GcPlan:
    keep: tuple[CacheEntry, ...]
    delete: tuple[CacheEntry, ...]

    @property
    def bytes_freed(self) -> int:
        """Layer bytes no kept entry references (what the registry's own GC can reclaim)."""
        kept = {layer for entry in self.keep for layer in entry.layers}
        gone = {layer for entry in self.delete for layer in entry.layers} - kept
        return sum(size for _, size in gone)


def plan_gc(entries: Sequence[CacheEntry], now: datetime, ttl_seconds: int, keep: int) -> GcPlan:
    dated = sorted(
        (e for e in entries if e.created is not None),
        key=lambda e: e.created or now,
        reverse=True,
    )
    protected = {e.digest for e in dated[:keep]} | {e.digest for e in entries if e.created is None}
    delete = [
        e
        for e in dated[keep:]
        if e.created is not None
        and (now - e.created).total_seconds() > ttl_seconds
        and e.digest not in protected
    ]
    doomed = {e.digest for e in delete}
    # A manifest an index that stays lists must stay too (its own tag past the TTL or not):
    # the registry would otherwise keep an index whose platform image is gone.
    doomed -= {child for e in entries if e.digest not in doomed for child in e.children}
    # Tags that share a manifest go together: a registry deletes the manifest, not the tag.
    return GcPlan(
        keep=tuple(e for e in entries if e.digest not in doomed),
        delete=tuple(e for e in entries if e.digest in doomed),
    )
