"""Placement group -> ordered OSDs: straw2 per position, upmaps, then out-retries.

Three stages, each stable on its own:

1. **Raw.** Every position draws straw2 over every failure domain (weighted by the
   domain's total weight), salted by the position, so positions draw independently.
   The strongest claim wins: the highest (position, domain) draw of the PG is settled
   first, then the highest among the remaining positions and domains, and so on; then
   straw2 over the chosen domain's OSDs. Settling the strongest claims first (rather
   than position 0 first) halves the shards that shuffle between old hosts when a host
   is added: a position loses a domain only to a stronger claim on it. OSD state is
   ignored here: out and down OSDs keep their raw slots, which is what makes marking an
   OSD out unable to disturb any other slot.
2. **Upmaps.** An exception ``(pg, position) -> osd`` replaces the raw OSD when the
   target exists, is usable (not out, weight > 0) and its domain is neither the raw
   domain nor an upmap target's domain of any other position. Those rules do not depend
   on the other OSDs' states, so an upmap stays put while others come and go.
3. **Retries.** A position whose OSD is out (or has no weight) draws again. It first
   keeps to its own share of the spare domains: each domain is dealt to one position
   by a hash of (pg, domain); the share loses the domains other positions hold or
   reserve (their raw and upmap domains) and gains the position's own raw and upmap
   domains. Shares are disjoint, so two retrying positions never compete and one going
   out cannot push another. A share with fewer than ``_MIN_SHARE`` domains (small
   trees) would pile retries onto one or two hosts, so such a position, or one whose
   share has nothing usable, draws from every unreserved domain instead, in position
   order after the others; only there can two out OSDs in one PG interact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agent.placement.errors import PlacementError
from agent.placement.hashing import U64, mix64, object_pg, stable_hash64
from agent.placement.layout import I64, Layout, build_layout
from agent.placement.pool import PoolSpec, Upmap
from agent.placement.straw2 import draws, inverse, salted
from agent.placement.tree import Tree, level_plural

__all__ = ["Mapper", "Placement", "place", "place_pg"]

_CHUNK_CELLS = 1 << 14
"""Draws per vectorised step: big enough to amortise numpy calls, small enough that the
temporaries stay in L2 (measured: 2**16 is several times slower per draw)."""

_MIN_SHARE = 4
"""A retrying position keeps to its own share of the spare domains only if that share
has this many (by crush weight, so the choice does not depend on OSD states); smaller
shares would pile the retries of a small tree onto one or two hosts."""


@dataclass(frozen=True, eq=False)
class Placement:
    """Where every shard of a pool lives: ``osds[pg, position]``, plus the raw straw2
    result before upmaps and retries (``raw``), for movement accounting."""

    pool: PoolSpec
    raw: I64
    osds: I64

    def __post_init__(self) -> None:
        self.raw.flags.writeable = False
        self.osds.flags.writeable = False

    def __getitem__(self, pg: int) -> tuple[int, ...]:
        return tuple(int(o) for o in self.osds[pg])

    def locate(self, name: str, chunk: int) -> tuple[int, ...]:
        """The OSDs holding shards 0..k+m-1 of chunk ``chunk`` of object ``name``."""
        return self[object_pg(self.pool.id, self.pool.pg_count, name, chunk)]

    def shard_counts(self) -> dict[int, int]:
        """Shards per OSD (OSDs holding none are absent)."""
        ids, counts = np.unique(self.osds, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts, strict=True)}


def place(tree: Tree, pool: PoolSpec, upmaps: Iterable[Upmap] = ()) -> Placement:
    """Place every placement group of ``pool``; raises :class:`PlacementError` if the
    tree has fewer usable failure domains than the pool has shards."""
    return Mapper(tree, pool).place(upmaps)


def place_pg(tree: Tree, pool: PoolSpec, pg: int, upmaps: Iterable[Upmap] = ()) -> tuple[int, ...]:
    """The OSDs of one placement group (same answer as ``place(...)[pg]``)."""
    mapper = Mapper(tree, pool)
    raw_dom, raw_osd = mapper.raw(np.array([pg], dtype=np.int64))
    entries = mapper.entries(upmaps).get(pg, {})
    return tuple(mapper.finalize(pg, raw_dom[0].tolist(), raw_osd[0].tolist(), entries))


class Mapper:
    """Everything derived once from (tree, pool) to place many placement groups."""

    def __init__(self, tree: Tree, pool: PoolSpec) -> None:
        self.tree = tree
        self.pool = pool
        lay = self.layout = build_layout(tree, pool.domain)
        n = pool.size
        have = int(lay.dom_usable.sum())
        if have < n:
            unit = level_plural(pool.domain, 2).split()[1]
            counted = "not marked out" if pool.domain == "osd" else "with an OSD not marked out"
            raise PlacementError(
                f"a {pool.k}+{pool.m} pool needs {level_plural(pool.domain, n)}, only {have} "
                f"{'is' if have == 1 else 'are'} up (counting {unit} {counted})"
            )
        self._pool_key = np.uint64(stable_hash64("pool", pool.id))
        self._dom_keys = np.stack([salted(lay.dom_uid, "domain", p) for p in range(n)])
        self._osd_keys = np.stack([salted(lay.osd_uid, "osd", p) for p in range(n)])
        self._retry_dom_keys = np.stack([salted(lay.dom_uid, "retry", p) for p in range(n)])
        self._retry_osd_keys = np.stack([salted(lay.osd_uid, "retry", p) for p in range(n)])
        self._share_keys = salted(lay.dom_uid, "share")
        self.dom_of: dict[int, int] = {
            int(i): int(d) for i, d in zip(lay.ids, lay.id_domain, strict=True)
        }
        self.usable: frozenset[int] = frozenset(int(i) for i in lay.ids[lay.id_usable])
        self.weight: dict[int, float] = {o.id: float(o.weight) for o in tree.osds}

    def pg_keys(self, pgs: I64) -> U64:
        return mix64(pgs.astype(np.uint64) ^ self._pool_key)

    def raw(self, pgs: I64) -> tuple[I64, I64]:
        """Stage 1 for many PGs at once: (domain index, OSD id) per (pg, position)."""
        lay: Layout = self.layout
        n = self.pool.size
        n_dom = lay.n_domains
        step = max(1, _CHUNK_CELLS // (n * max(n_dom, lay.osd_ids.shape[1])))
        dom_out = np.empty((len(pgs), n), dtype=np.int64)
        osd_out = np.empty((len(pgs), n), dtype=np.int64)
        positions = np.arange(n)
        for start in range(0, len(pgs), step):
            keys = self.pg_keys(pgs[start : start + step])
            rows = np.arange(len(keys))
            d = draws(keys[:, None, None] ^ self._dom_keys[None, :, :], lay.dom_inv)
            flat = d.reshape(len(keys), n * n_dom)
            chosen = np.empty((len(keys), n), dtype=np.int64)
            for _ in range(n):
                pos, dom = np.divmod(np.argmax(flat, axis=1), n_dom)
                chosen[rows, pos] = dom
                d[rows, pos, :] = -np.inf
                d[rows, :, dom] = -np.inf
            okeys = self._osd_keys[positions[None, :], chosen]
            od = draws(keys[:, None, None] ^ okeys, lay.osd_inv[chosen])
            pick = np.argmax(od, axis=2)
            dom_out[start : start + step] = chosen
            osd_out[start : start + step] = lay.osd_ids[chosen, pick]
        return dom_out, osd_out

    def entries(self, upmaps: Iterable[Upmap]) -> dict[int, dict[int, int]]:
        """This pool's upmaps as ``{pg: {position: osd}}``; items for other pools or out of
        range are dropped, and so are both of two items that disagree about one slot."""
        seen: dict[tuple[int, int], int | None] = {}
        for u in upmaps:
            if u.pool != self.pool.id or not 0 <= u.pg < self.pool.pg_count:
                continue
            if not 0 <= u.position < self.pool.size:
                continue
            slot = (u.pg, u.position)
            seen[slot] = u.osd if seen.get(slot, u.osd) == u.osd else None
        out: dict[int, dict[int, int]] = {}
        for (pg, pos), osd in sorted(seen.items()):
            if osd is not None:
                out.setdefault(pg, {})[pos] = osd
        return out

    def place(self, upmaps: Iterable[Upmap] = ()) -> Placement:
        pgs = np.arange(self.pool.pg_count, dtype=np.int64)
        raw_dom, raw_osd = self.raw(pgs)
        entries = self.entries(upmaps)
        final = raw_osd.copy()
        needs_retry = ~self.layout.usable(raw_osd).all(axis=1)
        for pg in sorted(set(np.flatnonzero(needs_retry).tolist()) | entries.keys()):
            final[pg] = self.finalize(
                pg, raw_dom[pg].tolist(), raw_osd[pg].tolist(), entries.get(pg, {})
            )
        return Placement(self.pool, raw_osd, final)

    def finalize(
        self,
        pg: int,
        raw_dom: Sequence[int],
        raw_osd: Sequence[int],
        entries: Mapping[int, int],
    ) -> list[int]:
        """Stages 2 and 3 for one PG, given its raw row and its upmaps."""
        n = self.pool.size
        edom = [-1] * n
        for p, t in entries.items():
            edom[p] = self.dom_of.get(t, -1)
        cur = list(raw_osd)
        for p, t in entries.items():
            d = edom[p]
            if d < 0 or t not in self.usable:
                continue
            if any(q != p and d in (raw_dom[q], edom[q]) for q in range(n)):
                continue
            cur[p] = t
        retry = [p for p in range(n) if cur[p] not in self.usable]
        if retry:
            self._retry(pg, raw_dom, edom, cur, retry=retry, entries=entries)
        return cur

    def _retry(
        self,
        pg: int,
        raw_dom: Sequence[int],
        edom: Sequence[int],
        cur: list[int],
        *,
        retry: Sequence[int],
        entries: Mapping[int, int],
    ) -> None:
        """Stage 3: a new OSD for each position in ``retry``, written into ``cur``.

        Tier 1 (the position's share of the domains plus its own raw and upmap domains,
        minus every domain another position holds or reserves) is disjoint between
        positions, so those picks never interact. Positions whose share is small or has
        nothing usable come after, in position order: tier 2 is every unreserved domain,
        tier 3 every domain not actually held; those may interact, which needs two out
        OSDs in one PG of a small tree.

        A position's own domains weigh their crush weight less the crush weight of the
        OSD it is leaving (raw or upmap target): the rest of that host competes fairly
        with other hosts, instead of inheriting the out OSD's share. All of this uses
        crush weights only, so no OSD state can change another position's draw.
        """
        lay = self.layout
        n = self.pool.size
        key = self.pg_keys(np.array([pg], dtype=np.int64))
        share = mix64(key ^ self._share_keys) % np.uint64(n)
        chosen: list[int] = []
        late: list[int] = []
        left: dict[int, dict[int, float]] = {}
        for p in retry:
            leaving = [cur[p], entries.get(p, -1)]
            left[p] = {}
            for d in (raw_dom[p], edom[p]):
                if d >= 0:
                    gone = sum(self.weight[o] for o in set(leaving) if self.dom_of.get(o) == d)
                    left[p][d] = float(lay.dom_weight[d]) - gone
        for p in retry:
            reserved = self._reserved(raw_dom, edom, p)
            mask = (share == np.uint64(p)) & (lay.dom_weight > 0)
            mask[reserved] = False
            if mask.sum() >= _MIN_SHARE:
                for d, w in left[p].items():
                    mask[d] = w > 0
                mask[reserved] = False
                mask &= lay.dom_usable
                if mask.any():
                    chosen.append(self._redraw(key, p, mask, cur, left[p]))
                    continue
            late.append(p)
        taken = [self.dom_of[cur[q]] for q in range(n) if q not in retry]
        for p in late:
            mask = lay.dom_usable.copy()
            mask[[d for d, w in left[p].items() if w <= 0]] = False
            mask[self._reserved(raw_dom, edom, p)] = False
            mask[chosen] = False
            own = left[p]
            if not mask.any():  # tier 3, plain crush weights
                mask = lay.dom_usable.copy()
                mask[taken] = False
                mask[chosen] = False
                own = {}
            if not mask.any():  # unreachable: the pool check counted enough domains
                raise PlacementError(f"pool {self.pool.id} pg {pg}: no domain left for shard {p}")
            chosen.append(self._redraw(key, p, mask, cur, own))

    def _reserved(self, raw_dom: Sequence[int], edom: Sequence[int], p: int) -> list[int]:
        """Domains other positions hold or may hold, whatever the OSD states are."""
        n = self.pool.size
        return [d for q in range(n) if q != p for d in (raw_dom[q], edom[q]) if d >= 0]

    def _redraw(
        self,
        key: U64,
        p: int,
        mask: NDArray[np.bool_],
        cur: list[int],
        own: Mapping[int, float],
    ) -> int:
        """Straw2 over the masked domains, then over the winner's usable OSDs."""
        lay = self.layout
        cands = np.flatnonzero(mask)
        weights = lay.dom_weight[cands].copy()
        for i, d in enumerate(cands.tolist()):
            if d in own:
                weights[i] = own[d]
        dd = draws(key ^ self._retry_dom_keys[p, cands], inverse(weights))
        dom = int(cands[np.argmax(dd)])
        od = draws(
            key ^ self._retry_osd_keys[p, dom],
            inverse(np.where(lay.osd_usable[dom], lay.osd_weight[dom], 0.0)),
        )
        cur[p] = int(lay.osd_ids[dom, np.argmax(od)])
        return dom
