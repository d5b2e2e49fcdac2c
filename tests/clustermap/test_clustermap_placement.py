from __future__ import annotations

from agent.clustermap import (
    AddNode,
    AddOsd,
    ClusterMap,
    CreatePool,
    NodeChange,
    SetNodeStates,
    apply,
)
from agent.clustermap.placement import pool_spec, tree_of, why_unplaceable
from agent.placement import OsdState, place
from agent.record import NodeRecord


def build(hosts: int, disks: int) -> ClusterMap:
    cmap = ClusterMap(cluster="c")
    for h in range(hosts):
        name = f"h{h}"
        cmd = AddNode(
            node=NodeRecord(name=name, address="a", public_key=name * 20), rack=f"r{h % 2}"
        )
        cmap = apply(cmap, cmd).cmap
        for d in range(disks):
            cmap = apply(cmap, AddOsd(node=name, path=f"/d{d}", weight=100 + d)).cmap
    return cmap


def test_the_tree_mirrors_the_map() -> None:
    cmap = build(3, 2)
    cmap = apply(cmap, SetNodeStates(changes=(NodeChange(name="h1", state="down"),), at=0.0)).cmap
    tree = tree_of(cmap)
    assert len(tree.osds) == 6
    for osd in tree.osds:
        info = cmap.osds[osd.id]
        assert (osd.host, osd.weight) == (info.node, info.weight)
        assert osd.rack == cmap.nodes[info.node].rack
        assert osd.state == (OsdState.DOWN if info.node == "h1" else OsdState.UP)


def test_a_pool_of_the_map_places_one_shard_per_host() -> None:
    cmap = apply(build(6, 2), CreatePool(name="p", k=4, m=2, pg_num=128)).cmap
    placement = place(tree_of(cmap), pool_spec(cmap.pools["p"]))
    for pg in range(128):
        hosts = [cmap.osds[osd].node for osd in placement[pg]]
        assert len(set(hosts)) == 6


def test_unplaceable_pools_say_why() -> None:
    cmap = build(5, 2)
    assert why_unplaceable(cmap, 4, 2, "host") == (
        "a 4+2 pool needs 6 hosts, only 5 are up (counting hosts with an OSD not marked out)"
    )
    assert why_unplaceable(cmap, 4, 2, "osd") is None  # 10 disks
    assert why_unplaceable(cmap, 2, 1, "rack") is not None  # 2 racks
