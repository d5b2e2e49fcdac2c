"""The failure detector: a pure state machine over heartbeats, driven by ``now``.

Each peer is ``alive`` while its heartbeats arrive, ``suspect`` once nothing fresh has
come for ``suspect_after`` seconds, and ``dead`` after ``dead_after``. A fresh heartbeat
(a higher seq of the same incarnation) or a new incarnation (the node rebooted) makes it
``alive`` again. Stale heartbeats (seq not above the last one, or from an incarnation we
have already seen replaced) are dropped, so a delayed packet cannot resurrect the past.

No clock, no sockets: the shell calls :meth:`FailureDetector.observe` when a heartbeat
arrives and :meth:`FailureDetector.tick` on a timer, passing its monotonic ``now``, and
acts on the returned events. Tests drive it with a fake clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from agent.errors import ConfigError


class PeerState(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class PeerAlive:
    node: str
    incarnation: int
    rebooted: bool
    """True when the node came back with a new incarnation (it restarted)."""


@dataclass(frozen=True, slots=True)
class PeerSuspect:
    node: str
    silent_for: float


@dataclass(frozen=True, slots=True)
class PeerDead:
    node: str
    silent_for: float


Transition = PeerAlive | PeerSuspect | PeerDead

_RETIRED_INCARNATIONS = 8


@dataclass(slots=True)
class _Peer:
    incarnation: int
    seq: int
    last_seen: float
    state: PeerState
    retired: deque[int] = field(default_factory=lambda: deque(maxlen=_RETIRED_INCARNATIONS))


@dataclass(frozen=True, slots=True)
class PeerView:
    """What the detector knows of one peer, for status displays."""

    node: str
    state: PeerState
    incarnation: int
    seq: int
    silent_for: float


class FailureDetector:
    """Tracks every peer's heartbeats and says when one goes suspect, dead or alive."""

    def __init__(self, suspect_after: float, dead_after: float) -> None:
        if not 0 < suspect_after < dead_after:
            raise ConfigError(
                f"the failure detector needs 0 < suspect_after < dead_after, "
                f"got {suspect_after} and {dead_after}"
            )
        self.suspect_after = suspect_after
        self.dead_after = dead_after
        self._peers: dict[str, _Peer] = {}

    def observe(self, node: str, incarnation: int, seq: int, now: float) -> list[Transition]:
        """A heartbeat arrived; returns the transition it causes, if any."""
        peer = self._peers.get(node)
        if peer is None:
            self._peers[node] = _Peer(incarnation, seq, now, PeerState.ALIVE)
            return [PeerAlive(node, incarnation, rebooted=False)]
        if incarnation != peer.incarnation:
            if incarnation in peer.retired:
                return []  # a delayed heartbeat from a previous life
            peer.retired.append(peer.incarnation)
            peer.incarnation, peer.seq, peer.last_seen = incarnation, seq, now
            peer.state = PeerState.ALIVE
            return [PeerAlive(node, incarnation, rebooted=True)]
        if seq <= peer.seq:
            return []  # duplicate or reordered: not a sign of life
        peer.seq, peer.last_seen = seq, now
        if peer.state is PeerState.ALIVE:
            return []
        peer.state = PeerState.ALIVE
        return [PeerAlive(node, incarnation, rebooted=False)]

    def tick(self, now: float) -> list[Transition]:
        """Advance time; returns every peer that went suspect or dead since the last tick."""
        events: list[Transition] = []
        for node, peer in self._peers.items():
            silent = now - peer.last_seen
            if silent >= self.dead_after and peer.state is not PeerState.DEAD:
                peer.state = PeerState.DEAD
                events.append(PeerDead(node, silent))
            elif self.suspect_after <= silent < self.dead_after and peer.state is PeerState.ALIVE:
                peer.state = PeerState.SUSPECT
                events.append(PeerSuspect(node, silent))
        return events

    def forget(self, node: str) -> None:
        """Stop tracking a peer (it was removed from the cluster)."""
        self._peers.pop(node, None)

    def state(self, node: str) -> PeerState | None:
        peer = self._peers.get(node)
        return peer.state if peer else None

    def views(self, now: float) -> list[PeerView]:
        return [
            PeerView(node, p.state, p.incarnation, p.seq, max(0.0, now - p.last_seen))
            for node, p in sorted(self._peers.items())
        ]
