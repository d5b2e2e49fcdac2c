"""The tree as numpy arrays for one failure-domain level, built once per map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agent.placement.hashing import F64, U64, stable_hash64
from agent.placement.straw2 import inverse
from agent.placement.tree import Level, Tree

__all__ = ["I64", "Layout", "build_layout"]

I64 = NDArray[np.int64]
B = NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class Layout:
    """Domains along axis 0 (sorted by name), their OSDs along axis 1 (by id, padded)."""

    level: Level
    names: tuple[str, ...]
    dom_uid: U64
    dom_weight: F64
    """Crush weight: the sum of the OSDs' weights, whatever their state, so marking an
    OSD out never changes any other shard's draw."""
    dom_inv: F64
    """``1 / dom_weight`` (inf for weight 0), what straw2 multiplies by."""
    dom_usable: B
    osd_ids: I64
    """(D, M) OSD ids, -1 where a domain has fewer than M OSDs."""
    osd_uid: U64
    osd_weight: F64
    osd_inv: F64
    osd_usable: B
    ids: I64
    """All OSD ids, sorted: the index for the by-id arrays below."""
    id_domain: I64
    id_usable: B

    @property
    def n_domains(self) -> int:
        return len(self.names)

    def index(self, osd_ids: I64) -> tuple[I64, B]:
        """Positions of ``osd_ids`` in :attr:`ids`, and which of them exist."""
        if len(self.ids) == 0:
            return np.zeros_like(osd_ids), np.zeros(osd_ids.shape, dtype=np.bool_)
        pos = np.minimum(np.searchsorted(self.ids, osd_ids), len(self.ids) - 1)
        return pos, self.ids[pos] == osd_ids

    def usable(self, osd_ids: I64) -> B:
        """Which of ``osd_ids`` exist and may hold shards."""
        pos, known = self.index(osd_ids)
        return known & self.id_usable[pos]

    def domain_of(self, osd_ids: I64) -> I64:
        """Domain index of each OSD id, -1 for ids not in the tree."""
        pos, known = self.index(osd_ids)
        return np.where(known, self.id_domain[pos], -1)


def build_layout(tree: Tree, level: Level) -> Layout:
    domains = tree.domains(level)
    n_dom = len(domains)
    width = max((len(d.osds) for d in domains), default=1)
    osd_ids = np.full((n_dom, width), -1, dtype=np.int64)
    osd_uid = np.zeros((n_dom, width), dtype=np.uint64)
    osd_weight = np.zeros((n_dom, width), dtype=np.float64)
    osd_usable = np.zeros((n_dom, width), dtype=np.bool_)
    for d, dom in enumerate(domains):
        for j, o in enumerate(dom.osds):
            osd_ids[d, j] = o.id
            osd_uid[d, j] = stable_hash64("osd", o.id)
            osd_weight[d, j] = float(o.weight)
            osd_usable[d, j] = o.usable
    dom_of = {o.id: d for d, dom in enumerate(domains) for o in dom.osds}
    ids = np.array([o.id for o in tree.osds], dtype=np.int64)
    return Layout(
        level=level,
        names=tuple(d.name for d in domains),
        dom_uid=np.array(
            [stable_hash64("domain", level, d.name) for d in domains], dtype=np.uint64
        ),
        dom_weight=osd_weight.sum(axis=1),
        dom_inv=inverse(osd_weight.sum(axis=1)),
        dom_usable=np.asarray(osd_usable.any(axis=1), dtype=np.bool_),
        osd_ids=osd_ids,
        osd_uid=osd_uid,
        osd_weight=osd_weight,
        osd_inv=inverse(osd_weight),
        osd_usable=osd_usable,
        ids=ids,
        id_domain=np.array([dom_of[o.id] for o in tree.osds], dtype=np.int64),
        id_usable=np.array([o.usable for o in tree.osds], dtype=np.bool_),
    )
