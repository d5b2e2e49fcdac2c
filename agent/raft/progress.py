"""What a leader knows about one follower: how far it matches, what to send next, and how.

The three states are etcd's: PROBE sends one append at a time until the follower's log is
found to match, REPLICATE streams optimistically, SNAPSHOT waits for an InstallSnapshot.
"""

from __future__ import annotations

import enum

__all__ = ["Progress", "ProgressState"]


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    """Replication cursor of one follower, kept only while we lead."""

    __slots__ = ("last_heard", "match", "next", "paused", "pending_snapshot", "sent_at", "state")

    def __init__(self, next_index: int, now: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        #: In PROBE: an append is in flight, wait for its answer or the next heartbeat.
        self.paused = False
        self.pending_snapshot = 0
        #: Leader tick at which the snapshot was sent, to retry it if it got lost.
        self.sent_at = 0
        #: Leader tick of the last message from this follower (check-quorum, QuorumLost).
        self.last_heard = now

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.paused = False
        self.next = self.match + 1

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.paused = False
        self.next = self.match + 1

    def become_snapshot(self, index: int, now: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.sent_at = now

    def maybe_update(self, index: int) -> bool:
        """The follower matches up to ``index``; returns whether ``match`` moved."""
        updated = index > self.match
        if updated:
            self.match = index
            self.paused = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease(self, rejected: int, hint: int) -> bool:
        """The follower rejected an append at ``rejected``; ``hint`` is the highest index where
        our logs may still agree. Returns False for a stale rejection."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
        elif self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint + 1), self.match + 1)
        self.paused = False
        return True
