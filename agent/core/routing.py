"""Write routing: lead a map change here, forward it to the leader, or refuse it and why.

Any node takes a ``ProposeRequest``. The leader commits it; another node forwards it over
a link it already holds (the leader if it hears it, else, on a node that is no monitor,
any monitor it hears, which knows the leader better); after ``MAX_FORWARD_HOPS`` hops,
or with no monitor to forward to, the write is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from agent.core.quorum import majority

MAX_FORWARD_HOPS = 2
"""A write goes client → any node → a monitor → the leader at most."""
MIN_DEADLINE_S = 0.1
MAX_DEADLINE_S = 30.0
"""A request's own deadline is honoured within these bounds."""
FORWARD_MARGIN_S = 0.05
"""Each hop keeps this much of the deadline, so it answers before the hop before it gives up."""


@dataclass(frozen=True, slots=True)
class Lead:
    """This node leads: propose the change to Raft here."""


@dataclass(frozen=True, slots=True)
class Forward:
    to: str
    hops: int
    """The hop count the forwarded request carries."""


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str
    quorum: bool
    """True: a majority of monitors is reachable (no leader yet); False: it is not."""


Route = Lead | Forward | Refuse


def deadline_s(deadline_ms: int) -> float:
    """A request's deadline in seconds, clamped to what this node is willing to wait."""
    return max(MIN_DEADLINE_S, min(deadline_ms / 1000, MAX_DEADLINE_S))


def forwarded_deadline_ms(deadline_ms: int) -> int:
    """The deadline a forwarded request carries: a little less than ours."""
    return max(int(MIN_DEADLINE_S * 1000), int((deadline_s(deadline_ms) - FORWARD_MARGIN_S) * 1000))


def route_write(
    *,
    me: str,
    monitors: Sequence[str],
    leads: bool,
    leader: str | None,
    heard: Collection[str],
    hops: int,
) -> Route:
    """Where a write that reached ``me`` after ``hops`` forwards goes next.

    ``leads``: this node is the Raft leader; ``leader``: who leads as far as this node
    knows; ``heard``: the peers its failure detector hears now.
    """
    reach = sum(1 for m in monitors if m == me or m in heard)
    quorum = reach >= majority(len(monitors))
    if leads:
        return Lead()
    if hops >= MAX_FORWARD_HOPS:
        return Refuse(
            f"the change was forwarded {hops} times without reaching the leader; "
            "an election may be running, retry shortly",
            quorum=True,
        )
    if leader is not None and leader != me and leader in heard:
        return Forward(leader, hops + 1)
    if me not in monitors:
        reachable = [m for m in monitors if m in heard]
        if reachable:
            return Forward(reachable[0], hops + 1)
    if quorum:
        return Refuse(
            f"node {me} reaches {reach} of {len(monitors)} monitors but none leads yet "
            "(an election is running); retry shortly",
            quorum=True,
        )
    return Refuse(
        f"node {me} reaches {reach} of {len(monitors)} monitors and no leader; "
        f"writes need a majority of {majority(len(monitors))}",
        quorum=False,
    )
