"""Leases: a compute node runs containers only while it holds one from the monitors.

Both sides reason on their own monotonic clocks, whose rates differ from real time by at
most ``rho``. The node counts its lease from the moment it *sent* the renewal and stops its
containers by ``t_send + ttl*(1-rho) - stop_time``; the leader counts from when it
*granted* it (after a majority confirmed it still leads) and treats the lease as live
until ``t_grant + ttl*(1+rho) + margin``. A newly elected leader, which cannot know the
grants of the one before, treats every lease as live for ``ttl*(1+rho) + margin`` from its
election. In real time the node's stop comes first (docs/ha.md derives the inequality;
the whole-node simulation checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

NEVER = float("-inf")


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    ttl: float
    rho: float
    """The bound on clock drift: any clock's rate is within 1 ± rho of real time."""
    margin: float
    """Extra wait on the monitors' side (message skew, scheduling)."""
    stop_time: float
    """How long the node allows itself to kill its containers."""

    def __post_init__(self) -> None:
        if not 0 <= self.rho < 0.1:
            raise ValueError(f"a clock drift bound of {self.rho} is not plausible")
        if self.ttl * (1 - self.rho) <= self.stop_time:
            raise ValueError(f"a lease of {self.ttl} s leaves no time to run after stopping")

    def holder_stop_by(self, sent_at: float) -> float:
        """Node clock: when the node must have stopped its containers."""
        return sent_at + self.ttl * (1 - self.rho) - self.stop_time

    def monitor_expiry(self, granted_at: float) -> float:
        """Monitor clock: when a lease granted at ``granted_at`` has surely ended."""
        return granted_at + self.ttl * (1 + self.rho) + self.margin


class LeaseHolder:
    """The node's side: which renewals are in flight and until when it may run."""

    def __init__(self, terms: LeaseTerms) -> None:
        self.terms = terms
        self._sent: dict[int, float] = {}
        self._seq = 0
        self.stop_by = NEVER
        """Node clock; containers must be stopped by then."""
        self.epoch = 0
        """The leader's map epoch at the newest grant: the node acts on no older map."""

    def sending(self, now: float) -> int:
        """A renewal goes out now; its grant will count from ``now``."""
        self._seq += 1
        self._sent[self._seq] = now
        return self._seq

    def granted(self, seq: int, epoch: int) -> None:
        sent_at = self._sent.pop(seq, None)
        if sent_at is None:
            return
        for old in [s for s in self._sent if s < seq]:
            del self._sent[old]  # an older renewal answered later counts from earlier: useless
        self.stop_by = max(self.stop_by, self.terms.holder_stop_by(sent_at))
        self.epoch = max(self.epoch, epoch)

    def refused(self, seq: int) -> None:
        self._sent.pop(seq, None)

    def holds(self, now: float, ahead: float = 0.0) -> bool:
        """True if the lease lasts past ``now + ahead``."""
        return now + ahead < self.stop_by

    def drop(self) -> None:
        """Forget the lease (the node was told it is down): stop now."""
        self.stop_by = NEVER


class LeaseTable:
    """The leader's side: until when each node's lease may still be live."""

    def __init__(self, terms: LeaseTerms) -> None:
        self.terms = terms
        self.blind_until = float("inf")
        self._expiry: dict[str, float] = {}

    def elected(self, now: float) -> None:
        """This monitor became leader: a predecessor's grants may be live for a full TTL."""
        self.blind_until = self.terms.monitor_expiry(now)
        self._expiry.clear()

    def deposed(self) -> None:
        self.blind_until = float("inf")
        self._expiry.clear()

    def granted(self, node: str, now: float) -> None:
        self._expiry[node] = max(self._expiry.get(node, NEVER), self.terms.monitor_expiry(now))

    def expires_at(self, node: str) -> float:
        """Monitor clock: when ``node``'s lease has surely ended (inf when not leading)."""
        return max(self.blind_until, self._expiry.get(node, NEVER))

    def expired(self, node: str, now: float) -> bool:
        return now >= self.expires_at(node)
