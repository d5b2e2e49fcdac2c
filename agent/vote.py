"""The vote: the leader marks a node down only when a majority of the cluster agrees.

Every agent reports, from its own failure detector, which peers it finds dead and which
alive (with their incarnations). The Raft leader tallies fresh reports and proposes
``down`` for a node that a majority of the cluster's electorate (nodes not ``out``)
reports dead, so one bad link evicts nobody; ``up`` when a majority sees it alive again
(a healed partition, or a reboot with a new incarnation); ``out`` once a node has been
down for ``out_after`` seconds, by the leader's clock as recorded in the map.

Pure: reports and ``now`` come in, :class:`~agent.clustermap.NodeChange` lists go out.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.clustermap import ClusterMap, NodeChange


@dataclass(frozen=True, slots=True)
class Report:
    reporter: str
    dead: frozenset[str]
    alive: dict[str, int]
    """Peers the reporter hears, with the incarnation it hears."""
    at: float


class VoteTally:
    def __init__(self, report_ttl: float, out_after: float) -> None:
        self.report_ttl = report_ttl
        self.out_after = out_after
        self._reports: dict[str, Report] = {}

    def report(
        self, reporter: str, dead: frozenset[str], alive: dict[str, int], now: float
    ) -> None:
        """Record a reporter's latest view; it replaces its previous one."""
        self._reports[reporter] = Report(reporter, dead, dict(alive), now)

    def fresh(self, now: float) -> list[Report]:
        return [r for r in self._reports.values() if now - r.at <= self.report_ttl]

    def decide(self, cmap: ClusterMap, now: float) -> list[NodeChange]:
        """The state changes a majority supports that the map does not show yet."""
        electorate = {name for name, n in cmap.nodes.items() if n.state != "out"}
        majority = len(electorate) // 2 + 1
        voters = [r for r in self.fresh(now) if r.reporter in electorate]
        changes: list[NodeChange] = []
        for name, node in sorted(cmap.nodes.items()):
            others = [r for r in voters if r.reporter != name]
            say_dead = sum(1 for r in others if name in r.dead)
            hearing = [r.alive[name] for r in others if name in r.alive]
            if node.state == "up" and say_dead >= majority:
                changes.append(NodeChange(name=name, state="down"))
            elif node.state != "up" and len(hearing) >= majority:
                changes.append(NodeChange(name=name, state="up", incarnation=max(hearing)))
            elif (
                node.state == "down"
                and node.down_since is not None
                and now - node.down_since >= self.out_after
            ):
                changes.append(NodeChange(name=name, state="out"))
        return changes
