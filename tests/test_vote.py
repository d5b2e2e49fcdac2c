from __future__ import annotations

from agent.clustermap import AddNode, ClusterMap, NodeChange, SetNodeStates, apply
from agent.vote import VoteTally

NODES = ["n1", "n2", "n3", "n4", "n5"]


def rack(states: dict[str, str] | None = None, down_since: float = 0.0) -> ClusterMap:
    cmap = ClusterMap(cluster="c")
    for name in NODES:
        cmap = apply(
            cmap,
            AddNode(
                name=name, address="a", rpc_port=1, pub_port=2, public_key=name * 20, roles=("mon",)
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


def test_majority_of_reports_marks_down() -> None:
    tally = VoteTally(report_ttl=2.0, out_after=60.0)
    cmap = rack()
    for reporter in ["n1", "n2"]:
        tally.report(reporter, frozenset({"n3"}), {}, now=10.0)
    assert tally.decide(cmap, now=10.0) == []  # 2 of 5 is no majority
    tally.report("n4", frozenset({"n3"}), {}, now=10.1)
    assert tally.decide(cmap, now=10.1) == [NodeChange(name="n3", state="down")]


def test_one_flaky_link_evicts_nobody() -> None:
    tally = VoteTally(report_ttl=2.0, out_after=60.0)
    tally.report("n1", frozenset({"n2"}), {}, now=0.0)
    for reporter in ["n3", "n4", "n5"]:
        tally.report(reporter, frozenset(), {"n2": 7}, now=0.0)
    assert tally.decide(rack(), now=0.5) == []


def test_stale_reports_do_not_count() -> None:
    tally = VoteTally(report_ttl=2.0, out_after=60.0)
    for reporter in ["n1", "n2", "n4"]:
        tally.report(reporter, frozenset({"n3"}), {}, now=0.0)
    assert tally.decide(rack(), now=2.5) == []


def test_a_node_cannot_vote_on_itself() -> None:
    tally = VoteTally(report_ttl=2.0, out_after=60.0)
    cmap = rack({"n3": "down"})
    tally.report("n3", frozenset(), {"n3": 1}, now=0.0)  # "I am alive", says n3
    tally.report("n1", frozenset(), {"n3": 9}, now=0.0)
    tally.report("n2", frozenset(), {"n3": 9}, now=0.0)
    assert tally.decide(cmap, now=0.0) == []  # only two others hear it
    tally.report("n4", frozenset(), {"n3": 9}, now=0.0)
    assert tally.decide(cmap, now=0.0) == [NodeChange(name="n3", state="up", incarnation=9)]


def test_out_follows_down_after_the_grace() -> None:
    tally = VoteTally(report_ttl=2.0, out_after=60.0)
    cmap = rack({"n3": "down"}, down_since=100.0)
    assert tally.decide(cmap, now=159.0) == []
    assert tally.decide(cmap, now=160.0) == [NodeChange(name="n3", state="out")]


def test_out_nodes_leave_the_electorate() -> None:
    """With two nodes out, 2 of the remaining 3 are a majority."""
    tally = VoteTally(report_ttl=2.0, out_after=60.0)
    cmap = rack({"n4": "out", "n5": "out"})
    tally.report("n1", frozenset({"n3"}), {}, now=0.0)
    tally.report("n2", frozenset({"n3"}), {}, now=0.0)
    assert tally.decide(cmap, now=0.0) == [NodeChange(name="n3", state="down")]
