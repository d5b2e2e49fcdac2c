from __future__ import annotations

from agent.clustermap import AddNode, AddOsd, ClusterMap, NodeChange, SetNodeStates, apply
from agent.core.chores import Chores, change_key
from tests.core.core_helpers import mapped, record


def test_a_change_is_proposed_once_while_in_flight_then_again() -> None:
    chores = Chores(inflight_s=2.0)
    empty = ClusterMap(cluster="c")
    add = AddNode(node=record("n1"))
    assert chores.due(empty, [add], [], [], now=0.0, wall=100.0) == [add]
    assert chores.due(empty, [add], [], [], now=1.0, wall=101.0) == []
    assert chores.due(empty, [add], [], [], now=2.5, wall=102.5) == [add]  # lost? ask again


def test_a_settled_change_may_be_proposed_at_once() -> None:
    chores = Chores()
    empty = ClusterMap(cluster="c")
    add = AddNode(node=record("n1"))
    chores.due(empty, [add], [], [], now=0.0, wall=0.0)
    chores.settled(add)
    assert chores.due(empty, [add], [], [], now=0.1, wall=0.1) == [add]


def test_the_vote_is_one_change_whatever_its_timestamp() -> None:
    chores = Chores()
    cmap = mapped(["n1", "n2", "n3"])
    down = [NodeChange(name="n3", state="down")]
    first = chores.due(cmap, [], [], down, now=0.0, wall=50.0)
    assert first == [SetNodeStates(changes=tuple(down), at=50.0)]
    assert chores.due(cmap, [], [], down, now=0.5, wall=50.5) == []
    assert change_key(first[0]) == change_key(SetNodeStates(changes=tuple(down), at=99.0))


def test_only_what_the_map_lacks_is_proposed() -> None:
    chores = Chores()
    cmap = mapped(["n1"])
    heard = [AddNode(node=record("n1")), AddNode(node=record("n2"))]
    disks = [AddOsd(node="n1", path="/d0", weight=100), AddOsd(node="n1", path="/d9", weight=5)]
    due = chores.due(cmap, heard, disks, [], now=0.0, wall=0.0)
    assert due == [heard[1], disks[1]]
    assert apply(cmap, due[1]).ok
