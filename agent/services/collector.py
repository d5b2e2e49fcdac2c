"""The OSD's garbage collector: deletes shards that no object version needs.

Two paths, one rule (:func:`agent.objects.collect.verdict`):

- *superseded*: when a disk's metadata journal takes a newer version of an object, the
  older version's chunks are remembered; once the grace has passed, the OSD that is
  first among the object's metadata set (the one up OSD that all agree on) deletes them
  on their OSDs. Nothing is scanned for this.
- *orphans*: shards that no committed version names (a failed put, a killed writer, or
  a superseded version whose reminder was lost in a restart). Each pass looks only at
  shards older than ``gc_orphan_after`` and asks their object's metadata set, at most
  once per ``gc_orphan_after`` for each shard version.
"""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.clustermap.model import ClusterMap
from agent.config import StorageConfig
from agent.data.link import DataLink
from agent.data.meta import MetaSet
from agent.errors import RackError
from agent.objects.collect import verdict
from agent.objects.format import ObjectMeta, ShardHeader, ShardId, Version
from agent.objects.layout import PoolLayout
from agent.wire import ShardDelete

if TYPE_CHECKING:
    from agent.services.osd import LocalDisk

log = logging.getLogger("agent.osd.collector")
Run = Callable[..., Any]


@dataclass(order=True, slots=True)
class _Due:
    at: float
    old: ObjectMeta = field(compare=False)


class Collector:
    def __init__(
        self, conf: StorageConfig, node: str, disks: Sequence[LocalDisk], run: Run
    ) -> None:
        self.conf = conf
        self.node = node
        self.disks = disks
        self._run = run
        self._due: list[_Due] = []
        self._verified: dict[tuple[int, str, Version], float] = {}

    def superseded(self, old: ObjectMeta, now: float) -> None:
        """A journal here replaced ``old`` at ``now`` (this node's wall clock, when the
        newer version committed, not when its put began): old's chunks go after the grace."""
        if old.chunks:
            heapq.heappush(self._due, _Due(now + self.conf.gc_superseded_after, old))

    async def run(self, cmap: ClusterMap, link: DataLink, now: float) -> int:
        deleted = 0
        while self._due and self._due[0].at <= now:
            deleted += await self._delete_superseded(cmap, link, heapq.heappop(self._due).old)
        for disk in self.disks:
            if disk.store is not None:
                deleted += await self._orphans(cmap, link, disk, now)
        return deleted

    async def _delete_superseded(self, cmap: ClusterMap, link: DataLink, old: ObjectMeta) -> int:
        pool = next((p for p in cmap.pools.values() if p.id == old.pool), None)
        if pool is None:
            return 0
        layout = PoolLayout.of(cmap, pool.name)
        _, meta_osds = layout.meta_set(old.name)
        primary = next((o for o in meta_osds if layout.is_up(o)), None)
        if primary is None or cmap.osds[primary].node != self.node:
            return 0
        by_osd: dict[int, list[ShardId]] = defaultdict(list)
        for ref in old.chunks:
            for position, osd in enumerate(ref.osds):
                if position not in ref.missing:
                    by_osd[osd].append(
                        ShardId(old.pool, ref.pg, old.name, old.version, ref.index, position)
                    )
        deleted = 0
        for osd, ids in by_osd.items():
            if osd not in cmap.osds or not layout.is_up(osd):
                continue  # the orphan scan finds them when their OSD is back
            try:
                reply, _ = await link.request(
                    layout.node_of(osd),
                    lambda rid, o=osd, i=tuple(ids): ShardDelete(  # type: ignore[misc]
                        rid=rid, osd=o, ids=i
                    ),
                )
            except RackError as exc:
                log.info("could not delete replaced shards of %r on osd.%d: %s", old.name, osd, exc)
                continue
            deleted += getattr(reply, "deleted", 0)
        if deleted:
            log.info("deleted %d shards of a replaced version of %r", deleted, old.name)
        return deleted

    async def _orphans(self, cmap: ClusterMap, link: DataLink, disk: LocalDisk, now: float) -> int:
        store = disk.store
        assert store is not None
        old_enough = now - self.conf.gc_orphan_after
        headers: list[tuple[ShardHeader, float]] = await self._run(
            lambda: [(h, t) for h, t in store.scan() if t <= old_enough]
        )
        self._verified = {k: t for k, t in self._verified.items() if t > old_enough}
        by_object: dict[tuple[int, str], list[tuple[ShardHeader, float]]] = defaultdict(list)
        for header, mtime in headers:
            key = (header.id.pool, header.id.object, header.id.version)
            if key not in self._verified:
                by_object[(header.id.pool, header.id.object)].append((header, mtime))
        pools = {p.id: p.name for p in cmap.pools.values()}
        layouts: dict[int, PoolLayout] = {}
        deleted = 0
        for (pool_id, name), shards in by_object.items():
            current: ObjectMeta | None = None
            if pool_id in pools:
                layout = layouts.setdefault(pool_id, PoolLayout.of(cmap, pools[pool_id]))
                try:
                    current = (await MetaSet(link, layout, name).read()).newest
                except RackError as exc:
                    log.debug("the collector skips %r for now: %s", name, exc)
                    continue
            for header, mtime in shards:
                why = verdict(header, mtime, current, now, self.conf, pool_known=pool_id in pools)
                if why is None:
                    self._verified[(pool_id, name, header.id.version)] = now
                elif await self._run(store.delete, header.id):
                    deleted += 1
                    log.info("collected shard %s of %r: %s", header.id.file_name(), name, why)
        return deleted
