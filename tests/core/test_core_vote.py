from __future__ import annotations

import itertools

from agent.clustermap import AddNode, ClusterMap, NodeChange, SetNodeStates, apply
from agent.core.vote import VoteTally, report_ttl
from agent.record import NodeRecord

NODES = ["n1", "n2", "n3", "n4", "n5"]


def rack(states: dict[str, str] | None = None, down_since: float = 0.0) -> ClusterMap:
    cmap = ClusterMap(cluster="c")
    for name in NODES:
        cmap = apply(
            cmap,
            AddNode(
                node=NodeRecord(
                    name=name,
                    address="a",
                    rpc_port=1,
                    pub_port=2,
                    public_key=name * 20,
                    roles=("mon",),
                )
            ),
        ).cmap
    for name, state in (states or {}).items():
        if state in ("down", "out"):
            cmap = apply(
                cmap, SetNodeStates(changes=(NodeChange(name=name, state="down"),), at=down_since)
            ).cmap
        if state == "out":
            cmap = apply(
                cmap, SetNodeStates(changes=(NodeChange(name=name, state="out"),), at=down_since)
            ).cmap
    return cmap


_seq = itertools.count(1)


class Tally(VoteTally):
    """A tally whose test reports carry increasing sequence numbers, as real ones do."""

    def __init__(self) -> None:
        super().__init__(report_ttl=2.0, out_after=60.0)

    def report(  # type: ignore[override]
        self, reporter: str, dead: frozenset[str], alive: dict[str, int], now: float
    ) -> bool:
        return super().report(reporter, dead, alive, now, seq=next(_seq))


def test_majority_of_reports_marks_down() -> None:
    tally = Tally()
    cmap = rack()
    for reporter in ["n1", "n2"]:
        tally.report(reporter, frozenset({"n3"}), {}, now=10.0)
    assert tally.decide(cmap, now=10.0, wall=10.0) == []  # 2 of 5 is no majority
    tally.report("n4", frozenset({"n3"}), {}, now=10.1)
    assert tally.decide(cmap, now=10.1, wall=10.1) == [NodeChange(name="n3", state="down")]


def test_one_flaky_link_evicts_nobody() -> None:
    tally = Tally()
    tally.report("n1", frozenset({"n2"}), {}, now=0.0)
    for reporter in ["n3", "n4", "n5"]:
        tally.report(reporter, frozenset(), {"n2": 7}, now=0.0)
    assert tally.decide(rack(), now=0.5, wall=0.5) == []


def test_stale_reports_do_not_count() -> None:
    tally = Tally()
    for reporter in ["n1", "n2", "n4"]:
        tally.report(reporter, frozenset({"n3"}), {}, now=0.0)
    assert tally.decide(rack(), now=2.5, wall=2.5) == []


def test_a_node_cannot_vote_on_itself() -> None:
    tally = Tally()
    cmap = rack({"n3": "down"})
    tally.report("n3", frozenset(), {"n3": 1}, now=0.0)  # "I am alive", says n3
    tally.report("n1", frozenset(), {"n3": 9}, now=0.0)
    tally.report("n2", frozenset(), {"n3": 9}, now=0.0)
    assert tally.decide(cmap, now=0.0, wall=0.0) == []  # only two others hear it
    tally.report("n4", frozenset(), {"n3": 9}, now=0.0)
    assert tally.decide(cmap, now=0.0, wall=0.0) == [
        NodeChange(name="n3", state="up", incarnation=9)
    ]


def test_out_follows_down_after_the_grace() -> None:
    tally = Tally()
    cmap = rack({"n3": "down"}, down_since=100.0)
    # out is judged on the wall clock down_since was stamped with, not the monotonic one
    assert tally.decide(cmap, now=5.0, wall=159.0) == []
    assert tally.decide(cmap, now=5.0, wall=160.0) == [NodeChange(name="n3", state="out")]
    assert tally.decide(cmap, now=1e9, wall=100.0) == []


def test_out_nodes_leave_the_electorate() -> None:
    """With two nodes out, 2 of the remaining 3 are a majority."""
    tally = Tally()
    cmap = rack({"n4": "out", "n5": "out"})
    tally.report("n1", frozenset({"n3"}), {}, now=0.0)
    tally.report("n2", frozenset({"n3"}), {}, now=0.0)
    assert tally.decide(cmap, now=0.0, wall=0.0) == [NodeChange(name="n3", state="down")]


def test_a_delayed_report_never_replaces_a_newer_one() -> None:
    tally = VoteTally(report_ttl=2.0, out_after=60.0)
    cmap = rack()
    for reporter in ["n1", "n2"]:
        tally.report(reporter, frozenset({"n3"}), {}, now=0.0, incarnation=1, seq=5)
    assert tally.report("n4", frozenset(), {"n3": 1}, now=0.0, incarnation=1, seq=6)
    # n4's older report ("n3 is dead") arrives late: it must not count
    assert not tally.report("n4", frozenset({"n3"}), {}, now=0.1, incarnation=1, seq=4)
    assert tally.decide(cmap, now=0.1, wall=0.1) == []
    # a duplicate is refused too
    assert not tally.report("n4", frozenset(), {"n3": 1}, now=0.1, incarnation=1, seq=6)


def test_a_rebooted_reporter_is_heard_and_its_previous_life_is_not() -> None:
    tally = VoteTally(report_ttl=2.0, out_after=60.0)
    assert tally.report("n1", frozenset(), {}, now=0.0, incarnation=1, seq=900)
    assert tally.report("n1", frozenset({"n3"}), {}, now=0.1, incarnation=2, seq=1)
    assert not tally.report("n1", frozenset(), {}, now=0.2, incarnation=1, seq=901)
    assert [r.incarnation for r in tally.fresh(now=0.2)] == [2]


def test_reports_count_for_two_dead_afters_and_at_least_a_second() -> None:
    assert report_ttl(1.0) == 2.0
    assert report_ttl(0.2) == 1.0
