"""The failure-domain tree and pool spec: validation and derived buckets."""

from __future__ import annotations

import pytest

from agent.errors import RackError
from agent.placement import Osd, OsdState, PlacementError, PoolSpec, Tree
from agent.placement.tree import level_plural


def _osds() -> list[Osd]:
    return [
        Osd(3, "b", "r1", 4),
        Osd(1, "a", "r1", 2),
        Osd(2, "a", "r1", 0, OsdState.OUT),
        Osd(7, "c", "r2", 8, OsdState.DOWN),
    ]


def test_tree_sorts_and_groups() -> None:
    tree = Tree.of(_osds())
    assert [o.id for o in tree.osds] == [1, 2, 3, 7]
    hosts = tree.domains("host")
    assert [(d.name, d.weight, [o.id for o in d.osds]) for d in hosts] == [
        ("a", 2, [1, 2]),
        ("b", 4, [3]),
        ("c", 8, [7]),
    ]
    assert [d.name for d in tree.domains("rack")] == ["r1", "r2"]
    assert [d.name for d in tree.domains("osd")] == ["osd.1", "osd.2", "osd.3", "osd.7"]
    assert [d.usable for d in hosts] == [True, True, True]


def test_usable_means_in_and_weighted() -> None:
    assert Osd(1, "h", "r", 1, OsdState.DOWN).usable
    assert not Osd(1, "h", "r", 1, OsdState.OUT).usable
    assert not Osd(1, "h", "r", 0).usable


def test_with_state_and_with_osds() -> None:
    tree = Tree.of(_osds())
    out = tree.with_state(3, OsdState.OUT)
    assert out.osd(3).state == OsdState.OUT
    assert tree.osd(3).state == OsdState.UP
    grown = tree.with_osds([Osd(4, "d", "r2", 1)])
    assert [o.id for o in grown.osds] == [1, 2, 3, 4, 7]
    with pytest.raises(PlacementError, match="no OSD 99"):
        tree.with_state(99, OsdState.OUT)


@pytest.mark.parametrize(
    ("osds", "words"),
    [
        ([Osd(1, "a", "r", 1), Osd(1, "b", "r", 1)], "listed twice"),
        ([Osd(1, "a", "r1", 1), Osd(2, "a", "r2", 1)], "host a is in two racks"),
        ([Osd(1, "a", "r", -5)], "weight -5"),
        ([Osd(1, "a", "r", 1.5)], "weight 1.5"),  # type: ignore[arg-type]
        ([Osd(-1, "a", "r", 1)], "OSD id -1"),
        ([Osd(1, "", "r", 1)], "empty host or rack"),
        ([Osd(1, "a", "r", 1, "gone")], "state 'gone'"),  # type: ignore[arg-type]
    ],
)
def test_tree_rejects_bad_input(osds: list[Osd], words: str) -> None:
    with pytest.raises(PlacementError, match=words) as err:
        Tree.of(osds)
    assert isinstance(err.value, RackError)


def test_plain_string_states_work() -> None:
    tree = Tree.of([Osd(1, "a", "r", 1, "out")])  # type: ignore[arg-type]
    assert not tree.osds[0].usable


def test_pool_spec() -> None:
    assert PoolSpec(1, 4, 2, 64).size == 6
    assert PoolSpec(1, 4, 2, 64).domain == "host"
    with pytest.raises(PlacementError, match="0\\+2 is not a valid code"):
        PoolSpec(1, 0, 2, 64)
    with pytest.raises(PlacementError, match="pg_count"):
        PoolSpec(1, 4, 2, 0)
    with pytest.raises(PlacementError, match="failure domain 'row'"):
        PoolSpec(1, 4, 2, 8, "row")  # type: ignore[arg-type]


def test_level_plural() -> None:
    assert level_plural("host", 1) == "1 host"
    assert level_plural("host", 6) == "6 hosts"
    assert level_plural("osd", 3) == "3 OSDs"
    assert level_plural("rack", 2) == "2 racks"
