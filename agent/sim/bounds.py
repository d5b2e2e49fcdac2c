"""The bound on how fast a dead node is voted down, derived from the timing (pure).

Every duration a node measures runs on its own clock, which may drift from true time by
at most ``DRIFT`` (rho): a local interval ``L`` lasts at most ``L / (1 - rho)`` true
seconds. Messages take at most ``delay_max``, an fsync at most ``fsync_max``. The
derivation, step by step, is in docs/simulation.md; this module is its arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import TimingConfig

DRIFT = 0.01
"""rho: the largest rate error of any node's monotonic clock that the design assumes (1 %,
twenty times what an undisciplined server crystal does; NTP slews by at most 0.05 %)."""


@dataclass(frozen=True, slots=True)
class Assumptions:
    delay_max: float
    """Longest one-way delay of a message while the bound is checked."""
    fsync_max: float
    """Longest fsync of the Raft log."""
    drift: float = DRIFT


@dataclass(frozen=True, slots=True)
class DownBound:
    detect: float
    """Kill → every survivor's detector calls the node dead and its next report arrives."""
    election_round: float
    """One election attempt after the leader is gone (timeout, pre-vote, vote)."""
    decide_and_commit: float
    """A fresh majority of reports → the leader proposes ``down`` → it is committed."""

    def seconds(self, attempts: int) -> float:
        """The bound when the survivors made ``attempts`` election attempts meanwhile."""
        elect = self.election_round * attempts
        return max(self.detect, elect) + self.decide_and_commit


def down_bound(t: TimingConfig, a: Assumptions) -> DownBound:
    k = 1.0 / (1.0 - a.drift)
    d, f = a.delay_max, a.fsync_max
    detect = d + (t.dead_after + t.detector_tick) * k + t.report_interval * k + d
    election_timeout = 2 * t.election_ticks * t.raft_tick * k  # randomised in [E, 2E) ticks
    election_round = d + election_timeout + t.raft_tick * k + 2 * d + (2 * d + 2 * f)
    decide = t.chores_interval * k + f  # the next chores, after the Ready in flight if any
    # the leader's log, a follower's log and its answer (the commit index itself is not
    # written), and one more fsync for a Ready already in the disk thread
    commit = f + d + f + d + f
    return DownBound(
        detect=detect, election_round=election_round, decide_and_commit=decide + commit
    )
