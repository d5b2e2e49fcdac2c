"""Deliberately wrong decisions, to show that the simulation's checker catches them."""

from __future__ import annotations

from agent.clustermap import ClusterMap, NodeChange
from agent.config import TimingConfig
from agent.core.lease import NEVER, LeaseTable
from agent.core.vote import VoteTally, report_ttl


class SingleReportVote(VoteTally):
    """Marks a node down as soon as one fresh report calls it dead (no majority)."""

    def decide(self, cmap: ClusterMap, now: float, *, wall: float) -> list[NodeChange]:
        fresh = [r for r in self.fresh(now) if r.reporter in cmap.nodes]
        return [
            NodeChange(name=name, state="down")
            for name, node in sorted(cmap.nodes.items())
            if node.state == "up" and any(name in r.dead for r in fresh if r.reporter != name)
        ]


class LateVote(VoteTally):
    """Right answers, too late: a node goes down only after a majority has called it dead
    for a second more (what a slow detector or a lazy leader would look like)."""

    LATE_S = 1.0

    def __init__(self, report_ttl: float, out_after: float) -> None:
        super().__init__(report_ttl, out_after)
        self._since: dict[str, float] = {}

    def decide(self, cmap: ClusterMap, now: float, *, wall: float) -> list[NodeChange]:
        changes = super().decide(cmap, now, wall=wall)
        downs = {c.name for c in changes if c.state == "down"}
        self._since = {n: self._since.get(n, now) for n in downs}
        return [c for c in changes if c.state != "down" or now - self._since[c.name] >= self.LATE_S]


class NoLeaseWait(LeaseTable):
    """Releases a down node at once, without waiting for its last lease to run out: the
    monitors would then move a container its cut-off node may still be running."""

    def released_at(self, node: str) -> float:
        return NEVER


BROKEN: dict[str, type[VoteTally]] = {
    "single-report-vote": SingleReportVote,
    "late-vote": LateVote,
}
BROKEN_LEASES: dict[str, type[LeaseTable]] = {"lease-wait": NoLeaseWait}


def broken_tally(name: str, timing: TimingConfig) -> VoteTally:
    """The broken vote ``name``, with the production vote's parameters."""
    return BROKEN[name](report_ttl(timing.dead_after), timing.out_after)
