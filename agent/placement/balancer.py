"""The upmap balancer: a few explicit exceptions that even out what hashing leaves.

Straw2 is fair only on average: with ~100 shards per OSD the fullest OSD holds ~30% more
than its share, and small OSDs fare worse. Like Ceph's upmap balancer, this moves single
shards from the most over-full OSDs (by shards / weight) to under-full ones, recording
each move as an :class:`Upmap` item, and stops once no OSD is ``max_deviation`` shards
above its fair share. Each move must keep every failure domain distinct and must be
exactly what the placement rules would then produce, so the items it returns, applied by
:func:`agent.placement.crush.place`, reproduce its result.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import numpy as np

from agent.placement.crush import Mapper, Placement
from agent.placement.pool import PoolSpec, Upmap
from agent.placement.tree import Tree

__all__ = ["balance", "max_over_mean"]


def max_over_mean(tree: Tree, placement: Placement) -> float:
    """The fullest usable OSD's shards per byte over the pool's shards per byte."""
    counts = placement.shard_counts()
    usable = [o for o in tree.osds if o.usable]
    total_weight = sum(o.weight for o in usable)
    total = sum(counts.get(o.id, 0) for o in usable)
    if total == 0:
        return 1.0
    mean = total / total_weight
    return max(counts.get(o.id, 0) / o.weight for o in usable) / mean


def balance(
    tree: Tree,
    pool: PoolSpec,
    upmaps: Iterable[Upmap] = (),
    *,
    max_deviation: float = 1.0,
    max_moves: int | None = None,
) -> tuple[Upmap, ...]:
    """The pool's upmap items after balancing, starting from ``upmaps``.

    Items of ``upmaps`` that no longer take effect (target out, domain clash, same as the
    raw result) are dropped; the rest are kept unless a move rewrites them. An OSD is
    over-full while it holds ``max_deviation`` or more shards above ``total * weight /
    total_weight``; the default 1 gives the tightest integral result.
    """
    return _Balancer(Mapper(tree, pool), upmaps).run(max_deviation, max_moves)


class _Balancer:
    def __init__(self, mapper: Mapper, upmaps: Iterable[Upmap]) -> None:
        self.mapper = mapper
        lay = mapper.layout
        pool = mapper.pool
        self.n = pool.size
        pgs = np.arange(pool.pg_count, dtype=np.int64)
        self.raw_dom, self.raw_osd = mapper.raw(pgs)
        self.entries = mapper.entries(upmaps)
        final = self.raw_osd.copy()
        needs_retry = ~lay.usable(self.raw_osd).all(axis=1)
        for pg in sorted(set(np.flatnonzero(needs_retry).tolist()) | self.entries.keys()):
            row = self._finalize(pg)
            kept = {
                p: t
                for p, t in self.entries.get(pg, {}).items()
                if row[p] == t and t != self.raw_osd[pg, p]
            }
            if kept:
                self.entries[pg] = kept
            else:
                self.entries.pop(pg, None)
            final[pg] = self._finalize(pg)
        self.final = final
        self.fdom = lay.domain_of(final)
        self.edom = np.full_like(final, -1)
        for pg, slots in self.entries.items():
            for p, t in slots.items():
                self.edom[pg, p] = mapper.dom_of[t]
        # Per-OSD bookkeeping, indexed like layout.ids.
        weights = np.array([float(o.weight) for o in mapper.tree.osds])
        usable = lay.id_usable
        flat = final.ravel()
        idx, _ = lay.index(flat)
        self.counts = np.bincount(idx, minlength=len(lay.ids)).astype(np.float64)
        total_weight = weights[usable].sum()
        self.target = np.where(usable, flat.size * weights / total_weight, 0.0)
        self.usable = usable
        order = np.argsort(idx, kind="stable")
        bounds = np.searchsorted(idx[order], np.arange(len(lay.ids) + 1))
        self.slots: list[set[int]] = [
            set(order[bounds[j] : bounds[j + 1]].tolist()) for j in range(len(lay.ids))
        ]

    def _finalize(self, pg: int) -> list[int]:
        return self.mapper.finalize(
            pg,
            self.raw_dom[pg].tolist(),
            self.raw_osd[pg].tolist(),
            self.entries.get(pg, {}),
        )

    def _ratio(self, j: int) -> float:
        return float(self.counts[j] / self.target[j])

    def run(self, max_deviation: float, max_moves: int | None) -> tuple[Upmap, ...]:
        dev = self.counts - self.target
        heap = [
            (-self._ratio(j), j)
            for j in np.flatnonzero(self.usable & (dev >= max_deviation)).tolist()
        ]
        heapq.heapify(heap)
        moves = 0
        while heap and (max_moves is None or moves < max_moves):
            neg, donor = heapq.heappop(heap)
            if -neg != self._ratio(donor):
                continue
            if self.counts[donor] - self.target[donor] < max_deviation:
                continue
            if not self._move_one(donor, max_deviation):
                continue  # stuck: every shard clashes with every receiver
            moves += 1
            if self.counts[donor] - self.target[donor] >= max_deviation:
                heapq.heappush(heap, (-self._ratio(donor), donor))
        items = [
            Upmap(self.mapper.pool.id, pg, p, t)
            for pg, slots in self.entries.items()
            for p, t in slots.items()
        ]
        return tuple(sorted(items))

    def _move_one(self, donor: int, max_deviation: float) -> bool:
        """Move one shard off ``donor`` to the best receiver that can take one."""
        lay = self.mapper.layout
        n = self.n
        # A receiver must stay below the over-full line and end up less loaded than the
        # donor is now, so no move can raise the maximum; emptiest-after-the-move first.
        room = self.usable & (self.counts + 1 - self.target < max_deviation)
        receivers = np.flatnonzero(room)
        after = (self.counts[receivers] + 1) / self.target[receivers]
        keep = after < self._ratio(donor)
        receivers, after = receivers[keep], after[keep]
        if len(receivers) == 0:
            return False
        receivers = receivers[np.lexsort((receivers, after))]
        slots = np.array(sorted(self.slots[donor]), dtype=np.int64)
        pgs, pos = slots // n, slots % n
        rows = np.arange(len(slots))
        raw_dom, edom, fdom = self.raw_dom[pgs], self.edom[pgs], self.fdom[pgs]
        raw_osd = self.raw_osd[pgs, pos]
        has_entry = edom[rows, pos] >= 0
        for r in receivers.tolist():
            osd = int(lay.ids[r])
            dom = int(lay.id_domain[r])
            blocked = (raw_dom == dom) | (edom == dom) | (fdom == dom)
            blocked[rows, pos] = False
            ok = ~blocked.any(axis=1)
            if not ok.any():
                continue
            # Prefer undoing an item, then rewriting one, then adding one.
            rank = np.where(raw_osd == osd, 0, np.where(has_entry, 1, 2))
            order = np.lexsort((slots, rank))
            for i in order[ok[order]].tolist():
                if self._try(int(pgs[i]), int(pos[i]), osd, donor, r):
                    return True
        return False

    def _try(self, pg: int, p: int, osd: int, donor: int, r: int) -> bool:
        before = self.entries.get(pg, {})
        after = dict(before)
        if osd == self.raw_osd[pg, p]:
            after.pop(p, None)
        else:
            after[p] = osd
        self.entries[pg] = after
        row = self._finalize(pg)
        expect = self.final[pg].tolist()
        expect[p] = osd
        if row != expect:
            self._set_entries(pg, before)
            return False
        self._set_entries(pg, after)
        self.final[pg, p] = osd
        self.fdom[pg, p] = self.mapper.dom_of[osd]
        self.edom[pg, p] = self.mapper.dom_of[osd] if p in after else -1
        slot = pg * self.n + p
        self.slots[donor].discard(slot)
        self.slots[r].add(slot)
        self.counts[donor] -= 1
        self.counts[r] += 1
        return True

    def _set_entries(self, pg: int, slots: dict[int, int]) -> None:
        if slots:
            self.entries[pg] = slots
        else:
            self.entries.pop(pg, None)
