"""The collector's rule: which shards no version needs (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.objects.collect import verdict
from agent.objects.format import ObjectMeta, ShardHeader, ShardId, Version


@dataclass(frozen=True)
class Graces:
    gc_superseded_after: float = 600.0
    gc_orphan_after: float = 3600.0


G = Graces()
NOW = 100_000.0


def shard(version: Version) -> ShardHeader:
    return ShardHeader(
        id=ShardId(1, 3, "obj", version, 0, 2), k=3, m=2, plugin="rs", chunk_len=9, shard_len=3
    )


def meta(version: Version, written_at: float, *, deleted: bool = False) -> ObjectMeta:
    return ObjectMeta(pool=1, name="obj", version=version, written_at=written_at, deleted=deleted)


def test_a_shard_of_the_current_version_is_kept_however_old() -> None:
    v = Version(5, 1)
    assert verdict(shard(v), 0.0, meta(v, 0.0), NOW, G) is None


def test_a_replaced_version_goes_only_after_the_grace() -> None:
    old, new = Version(5, 1), Version(9, 1)
    fresh = meta(new, NOW - G.gc_superseded_after + 1)
    assert verdict(shard(old), 0.0, fresh, NOW, G) is None
    stale = meta(new, NOW - G.gc_superseded_after)
    assert verdict(shard(old), 0.0, stale, NOW, G) == "a newer version replaced it"
    removed = meta(new, NOW - G.gc_superseded_after, deleted=True)
    assert verdict(shard(old), 0.0, removed, NOW, G) == "its object was removed"


def test_a_shard_no_committed_version_names_waits_for_the_orphan_grace() -> None:
    committed, failed = Version(5, 1), Version(9, 1)  # a newer put that never committed
    young = NOW - G.gc_orphan_after + 1
    assert verdict(shard(failed), young, meta(committed, 0.0), NOW, G) is None
    assert verdict(shard(failed), young, None, NOW, G) is None
    old = NOW - G.gc_orphan_after
    assert verdict(shard(failed), old, meta(committed, 0.0), NOW, G) is not None
    assert verdict(shard(failed), old, None, NOW, G) is not None


def test_a_deleted_pool_frees_its_shards_after_the_orphan_grace() -> None:
    s = shard(Version(5, 1))
    assert verdict(s, NOW - 10, None, NOW, G, pool_known=False) is None
    why = verdict(s, NOW - G.gc_orphan_after, None, NOW, G, pool_known=False)
    assert why == "its pool was deleted"
