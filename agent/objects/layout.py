"""Where an object's pieces go and how many answers make a quorum: pure arithmetic.

An object of more than :data:`INLINE_MAX` bytes is cut into chunks of at most
:data:`CHUNK_SIZE`; chunk ``i`` of ``name`` lives in placement group
``object_pg(pool, pg_num, name, i)``, and the object's metadata in the group of chunk
:data:`META_CHUNK`. Metadata is written to every OSD of that group and needs
``k + 1`` durable copies (Ceph's ``min_size``). A read needs ``R = max(k, m)`` answers, so
it still works with ``m`` OSDs gone when ``k >= m``, and it meets at least one copy of
every acknowledged version (``R + k + 1 > k + m``). Before a read returns a version, it
makes sure ``k + m - R + 1`` OSDs hold it, so every later read meets it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from agent.clustermap.model import ClusterMap, NodeInfo, PoolInfo
from agent.clustermap.placement import pool_spec, tree_of
from agent.objects.format import ObjectMeta, Version
from agent.placement import Placement, PlacementError, object_pg, place

CHUNK_SIZE: Final = 4 * 1024 * 1024
"""Bytes of object data per chunk: bounds memory and spreads big objects over all hosts."""
INLINE_MAX: Final = 16 * 1024
"""Objects up to this size live inside their metadata record (one fan-out, no shards)."""
META_CHUNK: Final = -1
"""The chunk index whose placement group holds an object's metadata."""


def write_quorum(k: int, m: int) -> int:
    """Durable copies a chunk's shards or an object's metadata need before an ack."""
    return k + 1


def read_quorum(k: int, m: int) -> int:
    """Metadata answers a read needs: enough to meet every write quorum."""
    return max(k, m)


def repair_quorum(k: int, m: int) -> int:
    """Copies of a version a read makes sure of before returning it (read repair)."""
    return k + m - read_quorum(k, m) + 1


def next_version(seen: Iterable[Version], now_ns: int, writer: int) -> Version:
    """A version after everything seen, close to the writer's clock."""
    newest = max(seen, default=Version(0, 0))
    return Version(max(now_ns, newest.ts + 1), writer)


def newest(answers: Mapping[int, ObjectMeta | None]) -> tuple[ObjectMeta | None, frozenset[int]]:
    """The newest version among a read's answers (OSD -> its record, or None when it has
    none) and the OSDs that hold exactly it: read repair writes it to the others."""
    found = [m for m in answers.values() if m is not None]
    best = max(found, key=lambda m: m.version, default=None)
    want = None if best is None else best.version
    holders = frozenset(
        osd for osd, m in answers.items() if (m.version if m is not None else None) == want
    )
    return best, holders


def chunk_lengths(size: int, chunk_size: int = CHUNK_SIZE) -> list[int]:
    """The lengths of the chunks of a ``size``-byte object (none for 0 bytes)."""
    full, rest = divmod(size, chunk_size)
    return [chunk_size] * full + ([rest] if rest else [])


@dataclass(slots=True)
class PoolLayout:
    """One pool's placement in one map, computed once for all of its placement groups."""

    cmap: ClusterMap
    pool: PoolInfo
    _placement: Placement | None = field(default=None, init=False)

    @classmethod
    def of(cls, cmap: ClusterMap, pool_name: str) -> PoolLayout:
        pool = cmap.pools.get(pool_name)
        if pool is None:
            known = ", ".join(sorted(cmap.pools)) or "none yet"
            raise PlacementError(f"there is no pool {pool_name!r} (pools: {known})")
        return cls(cmap, pool)

    @property
    def placement(self) -> Placement:
        if self._placement is None:
            self._placement = place(tree_of(self.cmap), pool_spec(self.pool))
        return self._placement

    def pg_of(self, name: str, chunk: int) -> int:
        return object_pg(self.pool.id, self.pool.pg_num, name, chunk)

    def osds_of(self, pg: int) -> tuple[int, ...]:
        return self.placement[pg]

    def meta_set(self, name: str) -> tuple[int, tuple[int, ...]]:
        """The placement group of the object's metadata and its OSDs."""
        pg = self.pg_of(name, META_CHUNK)
        return pg, self.osds_of(pg)

    def domain_of(self, osd: int) -> str:
        """The failure domain (host, rack or the OSD itself) the pool counts ``osd`` in."""
        info = self.cmap.osds[osd]
        if self.pool.failure_domain == "osd":
            return f"osd.{osd}"
        if self.pool.failure_domain == "rack":
            node = self.cmap.nodes.get(info.node)
            return node.rack if node is not None else "rack0"
        return info.node

    def node_of(self, osd: int) -> NodeInfo:
        return self.cmap.nodes[self.cmap.osds[osd].node]

    def is_up(self, osd: int) -> bool:
        info = self.cmap.osds.get(osd)
        if info is None or info.state != "up":
            return False
        node = self.cmap.nodes.get(info.node)
        return node is not None and node.state == "up" and node.data_port > 0
