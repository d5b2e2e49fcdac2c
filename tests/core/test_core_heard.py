from __future__ import annotations

import msgspec

from agent.clustermap import AddNode, AddOsd
from agent.core.heard import disk_health, heard
from agent.wire import DiskSummary
from tests.core.core_helpers import ALLOWLIST, beat, record


def test_each_enrolled_node_and_its_healthy_disks_are_heard() -> None:
    nodes, osds = heard([beat("n1", disks=2), beat("n2")], ALLOWLIST)
    assert nodes == [
        AddNode(node=record("n1"), incarnation=7),
        AddNode(node=record("n2"), incarnation=7),
    ]
    assert osds == [
        AddOsd(node="n1", path="/d0", weight=100),
        AddOsd(node="n1", path="/d1", weight=100),
        AddOsd(node="n2", path="/d0", weight=100),
    ]


def test_failed_or_empty_disks_are_not_osds() -> None:
    hb = beat("n1")
    bad = msgspec.structs.replace(
        hb,
        disks=(
            DiskSummary(path="/bad", total_bytes=100, free_bytes=0, ok=False),
            DiskSummary(path="/empty", total_bytes=0, free_bytes=0),
        ),
    )
    assert heard([bad], ALLOWLIST)[1] == []


def test_a_stranger_a_client_or_a_wrong_key_is_not_heard() -> None:
    impostor = beat("n1", public_key="x" * 40)
    stranger = msgspec.structs.replace(beat("n1"), node=record("n9"))
    client = msgspec.structs.replace(beat("n1"), node=record("admin"))
    assert heard([impostor, stranger, client], ALLOWLIST) == ([], [])


def test_disk_health_is_what_each_enrolled_node_says_of_its_disks() -> None:
    good = beat("n1", disks=1)
    refused = DiskSummary(path="/d1", total_bytes=0, free_bytes=0, ok=False, problem="swapped")
    both = msgspec.structs.replace(good, disks=(*good.disks, refused))
    impostor = beat("n2", public_key="x" * 40)
    assert disk_health([both, impostor], ALLOWLIST) == {("n1", "/d0"): True, ("n1", "/d1"): False}
