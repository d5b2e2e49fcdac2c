"""The vote: the leader marks a node down only when a majority of the cluster agrees.

Every agent reports, from its own failure detector, which peers it finds dead and which
alive (with their incarnations). The Raft leader tallies fresh reports and proposes
``down`` for a node that a majority of the cluster's electorate (nodes not ``out``)
reports dead, so one bad link evicts nobody; ``up`` when a majority sees it alive again
(a healed partition, or a reboot with a new incarnation); ``out`` once a node has been
down for ``out_after`` seconds, by the leader's clock as recorded in the map.

A reporter's reports are ordered by (incarnation, seq): one that was delayed in the
network never replaces a newer one. Pure: reports and ``now`` come in,
:class:`~agent.clustermap.NodeChange` lists go out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from agent.clustermap import ClusterMap, NodeChange
from agent.core.quorum import majority

REPORT_TTL_DEAD_AFTERS = 2.0
"""A report counts for this many ``dead_after`` periods after it arrived..."""
MIN_REPORT_TTL = 1.0
"""...and for at least this many seconds."""
_RETIRED_INCARNATIONS = 8


def report_ttl(dead_after: float) -> float:
    """How long a report counts: long enough to span a few report intervals."""
    return max(MIN_REPORT_TTL, REPORT_TTL_DEAD_AFTERS * dead_after)


@dataclass(frozen=True, slots=True)
class Report:
    reporter: str
    dead: frozenset[str]
    alive: dict[str, int]
    """Peers the reporter hears, with the incarnation it hears."""
    at: float
    incarnation: int = 0
    seq: int = 0


@dataclass(slots=True)
class _Reporter:
    latest: Report
    retired: deque[int] = field(default_factory=lambda: deque(maxlen=_RETIRED_INCARNATIONS))


class VoteTally:
    def __init__(self, report_ttl: float, out_after: float) -> None:
        self.report_ttl = report_ttl
        self.out_after = out_after
        self._reporters: dict[str, _Reporter] = {}

    def report(
        self,
        reporter: str,
        dead: frozenset[str],
        alive: dict[str, int],
        now: float,
        *,
        incarnation: int = 0,
        seq: int = 0,
    ) -> bool:
        """Record a reporter's view if it is newer than the last one; returns whether it was."""
        new = Report(reporter, dead, dict(alive), now, incarnation, seq)
        known = self._reporters.get(reporter)
        if known is None:
            self._reporters[reporter] = _Reporter(new)
            return True
        last = known.latest
        if incarnation == last.incarnation:
            if seq <= last.seq:
                return False  # a duplicate, or overtaken by a newer report
        elif incarnation in known.retired:
            return False  # from a previous life of the reporter
        else:
            known.retired.append(last.incarnation)
        known.latest = new
        return True

    def fresh(self, now: float) -> list[Report]:
        return [r.latest for r in self._reporters.values() if now - r.latest.at <= self.report_ttl]

    def decide(self, cmap: ClusterMap, now: float, *, wall: float) -> list[NodeChange]:
        """The state changes a majority supports that the map does not show yet.

        ``now`` (monotonic, like the reports' arrival) judges freshness; ``wall`` judges
        ``out``, because ``down_since`` was stamped with the leader's wall clock, which is
        the only clock that means the same on the next leader.
        """
        electorate = {name for name, n in cmap.nodes.items() if n.state != "out"}
        needed = majority(len(electorate))
        voters = [r for r in self.fresh(now) if r.reporter in electorate]
        changes: list[NodeChange] = []
        for name, node in sorted(cmap.nodes.items()):
            others = [r for r in voters if r.reporter != name]
            say_dead = sum(1 for r in others if name in r.dead)
            hearing = [r.alive[name] for r in others if name in r.alive]
            if node.state == "up" and say_dead >= needed:
                changes.append(NodeChange(name=name, state="down"))
            elif node.state != "up" and len(hearing) >= needed:
                changes.append(NodeChange(name=name, state="up", incarnation=max(hearing)))
            elif (
                node.state == "down"
                and node.down_since is not None
                and wall - node.down_since >= self.out_after
            ):
                changes.append(NodeChange(name=name, state="out"))
        return changes
