from __future__ import annotations

import msgspec

from agent.core.formed import forming
from agent.record import NodeRecord
from agent.wire import ClusterStatus, DiskSummary, NodeStatus, Quorum

DISK = DiskSummary(path="/d0", total_bytes=100, free_bytes=50)


def node(
    name: str, state: str = "up", in_map: bool = True, osd_ids: tuple[int, ...] = (1,)
) -> NodeStatus:
    rec = NodeRecord(name=name, address="10.0.0.1")
    return NodeStatus(
        **msgspec.structs.asdict(rec),
        state=state,
        last_heartbeat_age_s=0.1,
        osds=(DISK,) if state == "up" else (),
        in_map=in_map,
        osd_ids=osd_ids,
    )


def view(*nodes: NodeStatus, leader: str | None = "n1") -> ClusterStatus:
    return ClusterStatus(
        cluster="c",
        epoch=9,
        quorum=Quorum(leader=leader, term=2, members=("n1", "n2", "n3")),
        nodes=nodes,
        answered_by="n1",
    )


def test_a_rack_with_every_node_up_mapped_and_led_is_formed() -> None:
    assert forming(view(node("n1"), node("n2"), node("n3"))) == []


def test_what_is_missing_is_said_in_plain_words() -> None:
    missing = forming(
        view(node("n1"), node("n2", state="suspect"), node("n3", in_map=False), leader=None)
    )
    assert missing == [
        "n1 does not see n2 up",
        "n1 knows no monitor leader",
        "n1's map lacks n3 or their disks",
    ]


def test_a_disk_the_map_does_not_list_keeps_the_rack_forming() -> None:
    assert forming(view(node("n1"), node("n2", osd_ids=()))) == ["n1's map lacks n2 or their disks"]


def test_only_the_expected_nodes_need_to_be_up() -> None:
    killed = node("n3", state="down")
    assert forming(view(node("n1"), node("n2"), killed), expected=["n1", "n2"]) == []
    assert forming(view(node("n1"), node("n2"), killed)) == ["n1 does not see n3 up"]


def test_a_node_taken_out_of_service_is_not_expected_up() -> None:
    retired = node("n3", state="out")
    assert forming(view(node("n1"), node("n2"), retired)) == []


def test_a_rack_without_monitors_needs_no_leader_or_map() -> None:
    lone = ClusterStatus(cluster="c", epoch=0, quorum=None, nodes=(node("n1", in_map=False),))
    assert forming(lone) == []
