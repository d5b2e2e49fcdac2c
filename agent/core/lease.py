"""Leases: a compute node runs containers only while a majority of monitors lease it.

Each monitor grants on its own, from its own map: it leases a node that map has ``up``,
and never one it has ``down``. Both sides reason only on their own monotonic clocks,
whose rates differ from real time by at most ``rho``:

- the node counts a lease from the moment it *sent* the renewal that a majority granted,
  and has stopped its containers by ``t_send + ttl*(1-rho)`` (it starts killing them
  ``stop_time`` earlier);
- a monitor that granted at ``t_grant`` (later than ``t_send`` in real time) says the
  lease is over, *releases* it, no earlier than ``t_grant + ttl*(1+rho) + margin``; a
  monitor that just started, and so forgot its grants, waits that long from its start.

The leader moves a down node's containers only once a majority of monitors released it.
Any majority that could have leased the node shares a monitor with that one, so no lease
is live: in real time the node stopped first (docs/ha.md derives it; the whole-node
simulation checks it). No leader is involved in granting, so a leader's death costs no
node its lease.
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
    """Extra wait on the monitors' side (scheduling, the kill itself)."""
    stop_time: float
    """How long before its lease ends the node starts killing its containers."""

    def __post_init__(self) -> None:
        if not 0 <= self.rho < 0.1:
            raise ValueError(f"a clock drift bound of {self.rho} is not plausible")
        if self.ttl * (1 - self.rho) <= self.stop_time:
            raise ValueError(f"a lease of {self.ttl} s leaves no time to run after stopping")

    def holder_stop_by(self, sent_at: float) -> float:
        """Node clock: when the node starts killing its containers."""
        return sent_at + self.ttl * (1 - self.rho) - self.stop_time

    def release_at(self, granted_at: float) -> float:
        """Monitor clock: when a lease granted at ``granted_at`` has surely ended."""
        return granted_at + self.ttl * (1 + self.rho) + self.margin


class LeaseHolder:
    """The node's side: renewals in flight, grants counted, and until when it may run."""

    def __init__(self, terms: LeaseTerms, quorum: int) -> None:
        self.terms = terms
        self.quorum = quorum
        self._sent: dict[int, tuple[float, set[str]]] = {}
        self._seq = 0
        self.stop_by = NEVER
        """Node clock; the containers are killed then, unless a renewal extends it."""
        self.epoch = 0
        """The newest map epoch a granting monitor had: the node acts on no older map."""

    def sending(self, now: float) -> int:
        """A renewal goes out now to every monitor; its grants count from ``now``."""
        self._seq += 1
        self._sent[self._seq] = (now, set())
        horizon = now - self.terms.ttl
        for seq in [s for s, (t, _) in self._sent.items() if t < horizon]:
            del self._sent[seq]  # a renewal this old could only grant a lease already over
        return self._seq

    def granted(self, seq: int, monitor: str, epoch: int) -> bool:
        """One monitor granted renewal ``seq``; True when that made the lease longer."""
        entry = self._sent.get(seq)
        if entry is None:
            return False
        sent_at, grants = entry
        grants.add(monitor)
        self.epoch = max(self.epoch, epoch)
        if len(grants) < self.quorum:
            return False
        stop_by = self.terms.holder_stop_by(sent_at)
        if stop_by <= self.stop_by:
            return False
        self.stop_by = stop_by
        return True

    def holds(self, now: float, ahead: float = 0.0) -> bool:
        """True if the lease lasts past ``now + ahead``."""
        return now + ahead < self.stop_by

    def drop(self) -> None:
        """Forget the lease (the node learnt it is down in the map): stop now."""
        self.stop_by = NEVER
        self._sent.clear()


class LeaseTable:
    """One monitor's side: when it last leased each node, and when that lease is over."""

    def __init__(self, terms: LeaseTerms, started_at: float) -> None:
        self.terms = terms
        self.blind_until = terms.release_at(started_at)
        """Grants from before this monitor (re)started are unknown: they are live till then."""
        self._granted: dict[str, float] = {}

    def granted(self, node: str, now: float) -> None:
        self._granted[node] = max(self._granted.get(node, NEVER), now)

    def released_at(self, node: str) -> float:
        """Monitor clock: from when this monitor's leases of ``node`` are surely over."""
        return max(self.blind_until, self.terms.release_at(self._granted.get(node, NEVER)))

    def released(self, node: str, now: float) -> bool:
        return now >= self.released_at(node)
