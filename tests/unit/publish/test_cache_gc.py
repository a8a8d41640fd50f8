"""Which cache entries ``cache gc`` deletes (the plan alone; the registry side is in
tests/integration/registry/test_registry.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pipeline_kit.publish.cache_gc import CacheEntry, plan_gc

NOW = datetime(2026, 12, 6, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=30)


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def test_old_entries_beyond_keep_go_and_tags_of_one_manifest_go_together() -> None:
    entries = [
        CacheEntry("new", _digest(1), NOW, frozenset({("l1", 10)})),
        CacheEntry("old", _digest(2), OLD, frozenset({("l2", 20)})),
        CacheEntry("old-too", _digest(2), OLD, frozenset({("l2", 20)})),
        CacheEntry("undated", _digest(3), None, frozenset()),
    ]
    plan = plan_gc(entries, NOW, ttl_seconds=86400, keep=1)
    assert [e.tag for e in plan.delete] == ["old", "old-too"]
    assert plan.bytes_freed == 20


def test_a_platform_image_an_index_that_stays_lists_is_kept() -> None:
    """A merged index and the per-platform tags its children were pushed under: the children's
    own tags are past the TTL, but the index stays, so they do too."""
    amd, arm, index = _digest(10), _digest(11), _digest(12)
    entries = [
        CacheEntry("main-linux-amd64", amd, OLD, frozenset({("a", 1)})),
        CacheEntry("main-linux-arm64", arm, OLD, frozenset({("b", 1)})),
        CacheEntry("main", index, None, frozenset(), frozenset({amd, arm})),
        CacheEntry("stale", _digest(13), OLD, frozenset({("c", 5)})),
    ]
    plan = plan_gc(entries, NOW, ttl_seconds=86400, keep=0)
    assert [e.tag for e in plan.delete] == ["stale"]
    gone = plan_gc(entries[:2], NOW, ttl_seconds=86400, keep=0)  # without the index
    assert [e.tag for e in gone.delete] == ["main-linux-amd64", "main-linux-arm64"]
