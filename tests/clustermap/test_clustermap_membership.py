from __future__ import annotations

from agent.clustermap import (
    AddNode,
    AddOsd,
    ClusterMap,
    NodeChange,
    SetNodeStates,
    SetOsdState,
    apply,
    membership_changes,
    osd_state_changes,
)
from agent.placement import OsdState
from agent.record import NodeRecord


def heard(name: str, address: str = "10.0.0.1", incarnation: int = 1) -> AddNode:
    record = NodeRecord(name=name, address=address, public_key=name * 20, roles=("osd",))
    return AddNode(node=record, incarnation=incarnation)


def test_new_nodes_then_their_disks_are_proposed_once_each() -> None:
    cmap = ClusterMap(cluster="c")
    nodes = [heard("n1"), heard("n2")]
    disks = [AddOsd(node="n1", path="/d0", weight=10), AddOsd(node="n2", path="/d0", weight=10)]
    first = membership_changes(cmap, nodes, disks)
    assert first == nodes  # disks wait until their node is in the map
    for cmd in first:
        cmap = apply(cmap, cmd).cmap
    second = membership_changes(cmap, nodes, disks)
    assert second == disks
    for cmd in second:
        cmap = apply(cmap, cmd).cmap
    assert membership_changes(cmap, nodes, disks) == []


def test_a_move_is_proposed_but_a_reboot_is_left_to_the_vote() -> None:
    cmap = apply(ClusterMap(cluster="c"), heard("n1", incarnation=1)).cmap
    assert membership_changes(cmap, [heard("n1", incarnation=2)], []) == []
    moved = membership_changes(cmap, [heard("n1", address="10.0.0.9", incarnation=2)], [])
    assert moved == [heard("n1", address="10.0.0.9", incarnation=1)]  # keeps the map's incarnation


def _two_disk_map() -> ClusterMap:
    cmap = ClusterMap(cluster="c")
    for cmd in (heard("n1"), AddOsd(node="n1", path="/d0", weight=10)):
        cmap = apply(cmap, cmd).cmap
    return apply(cmap, AddOsd(node="n1", path="/d1", weight=10)).cmap


def test_a_refused_disk_goes_down_and_comes_back_when_healthy_again() -> None:
    cmap = _two_disk_map()
    changes = osd_state_changes(cmap, {("n1", "/d0"): True, ("n1", "/d1"): False})
    assert changes == [SetOsdState(id=1, state=OsdState.DOWN)]
    for cmd in changes:
        cmap = apply(cmap, cmd).cmap
    assert osd_state_changes(cmap, {("n1", "/d1"): False}) == []  # already down
    assert osd_state_changes(cmap, {("n1", "/d1"): True}) == [SetOsdState(id=1, state=OsdState.UP)]
    assert osd_state_changes(cmap, {}) == []  # nothing heard: nothing to say


def test_the_disks_of_a_down_node_are_left_to_the_vote() -> None:
    cmap = _two_disk_map()
    down = apply(cmap, SetNodeStates(changes=(NodeChange(name="n1", state="down"),), at=1.0))
    assert down.ok
    assert osd_state_changes(down.cmap, {("n1", "/d0"): True, ("n1", "/d1"): True}) == []
