"""The cluster map as placement sees it: its OSDs as a failure-domain tree, its pools as
placement specs. One bridge, so every node derives the same placement from the same map."""

from __future__ import annotations

from agent.clustermap.model import ClusterMap, PoolInfo
from agent.placement import Level, Osd, OsdState, PlacementError, PoolSpec, Tree, place_pg


def tree_of(cmap: ClusterMap) -> Tree:
    return Tree.of(
        Osd(
            id=osd.id,
            host=osd.node,
            rack=cmap.nodes[osd.node].rack if osd.node in cmap.nodes else "rack0",
            weight=osd.weight,
            state=OsdState(osd.state),
        )
        for osd in cmap.osds.values()
    )


def pool_spec(pool: PoolInfo) -> PoolSpec:
    return PoolSpec(
        id=pool.id, k=pool.k, m=pool.m, pg_count=pool.pg_num, domain=pool.failure_domain
    )


def why_unplaceable(cmap: ClusterMap, k: int, m: int, level: Level) -> str | None:
    """None if a k+m pool fits the map's failure domains, else the placement's sentence."""
    spec = PoolSpec(id=0, k=k, m=m, pg_count=1, domain=level)
    try:
        place_pg(tree_of(cmap), spec, 0)
    except PlacementError as exc:
        return str(exc)
    return None
