from __future__ import annotations

import pytest

from agent.core.routing import (
    FORWARD_MARGIN_S,
    MAX_DEADLINE_S,
    MAX_FORWARD_HOPS,
    MIN_DEADLINE_S,
    Forward,
    Lead,
    Refuse,
    deadline_s,
    forwarded_deadline_ms,
    route_write,
)

MONITORS = ("n1", "n2", "n3")


def route(me: str, **kw: object) -> object:
    args: dict[str, object] = {
        "me": me,
        "monitors": MONITORS,
        "leads": False,
        "leader": None,
        "heard": (),
        "hops": 0,
    }
    args.update(kw)
    return route_write(**args)  # type: ignore[arg-type]


def test_the_leader_leads_whatever_else_it_knows() -> None:
    assert route("n1", leads=True, hops=MAX_FORWARD_HOPS) == Lead()


def test_a_node_forwards_to_the_leader_it_hears() -> None:
    assert route("n4", leader="n2", heard={"n1", "n2"}) == Forward("n2", 1)
    assert route("n3", leader="n2", heard={"n2"}, hops=1) == Forward("n2", 2)


def test_a_node_that_is_no_monitor_asks_any_monitor_when_the_leader_is_silent() -> None:
    assert route("n5", leader="n1", heard={"n3", "n2"}) == Forward("n2", 1)
    assert route("n5", heard={"n3"}) == Forward("n3", 1)


def test_a_monitor_that_reaches_a_majority_but_no_leader_says_an_election_runs() -> None:
    refused = route("n2", heard={"n3"})
    assert refused == Refuse(
        "node n2 reaches 2 of 3 monitors but none leads yet (an election is running); "
        "retry shortly",
        quorum=True,
    )


def test_a_monitor_cut_off_from_the_majority_says_there_is_no_quorum() -> None:
    refused = route("n2", leader="n1")
    assert refused == Refuse(
        "node n2 reaches 1 of 3 monitors and no leader; writes need a majority of 2",
        quorum=False,
    )


def test_a_lonely_node_refuses_with_what_it_reaches() -> None:
    refused = route("n5", leader="n1")
    assert isinstance(refused, Refuse) and not refused.quorum
    assert "reaches 0 of 3 monitors" in refused.reason


def test_the_hop_limit_ends_forwarding_loops() -> None:
    refused = route("n4", leader="n2", heard={"n2"}, hops=MAX_FORWARD_HOPS)
    assert isinstance(refused, Refuse) and refused.quorum
    assert f"forwarded {MAX_FORWARD_HOPS} times" in refused.reason
    assert route("n4", leader="n2", heard={"n2"}, hops=MAX_FORWARD_HOPS - 1) == Forward(
        "n2", MAX_FORWARD_HOPS
    )


def test_a_node_never_forwards_to_itself() -> None:
    assert isinstance(route("n2", leader="n2", heard={"n2"}), Refuse)


@pytest.mark.parametrize(
    ("ms", "seconds"),
    [(0, MIN_DEADLINE_S), (-5, MIN_DEADLINE_S), (2500, 2.5), (10**9, MAX_DEADLINE_S)],
)
def test_deadlines_are_clamped(ms: int, seconds: float) -> None:
    assert deadline_s(ms) == seconds


def test_each_hop_passes_on_a_little_less_time_than_it_has() -> None:
    assert forwarded_deadline_ms(3000) == 3000 - int(FORWARD_MARGIN_S * 1000)
    assert forwarded_deadline_ms(forwarded_deadline_ms(3000)) < forwarded_deadline_ms(3000)
    assert forwarded_deadline_ms(0) == int(MIN_DEADLINE_S * 1000)
    assert forwarded_deadline_ms(10**9) < MAX_DEADLINE_S * 1000
