"""An in-memory :class:`~agent.raft.ready.LogStore` with the exact semantics of the disk one.

The simulator and tests use it so that "crash and restart" means "rebuild the core from
what this object holds", with no file I/O in the hot loop.
"""

from __future__ import annotations

from agent.raft.messages import Entry, HardState, PersistentState, Snapshot

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """Holds hard state, snapshot and entries exactly as a shell would have persisted them."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []

    @property
    def snap_index(self) -> int:
        return self.snapshot.index if self.snapshot else 0

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    def term(self, index: int) -> int | None:
        if self.snapshot is not None and index == self.snapshot.index:
            return self.snapshot.term
        if index == 0:
            return 0
        off = index - self.snap_index - 1
        if 0 <= off < len(self.entries):
            return self.entries[off].term
        return None

    def load(self) -> PersistentState:
        return PersistentState(self.hard_state, self.snapshot, tuple(self.entries))

    def append(self, entries: tuple[Entry, ...]) -> None:
        for e in entries:
            if e.index != self.last_index + 1:
                raise ValueError(f"append of {e.index} after {self.last_index}")
            self.entries.append(e)

    def truncate_from(self, index: int) -> None:
        off = index - self.snap_index - 1
        if off < 0:
            raise ValueError(f"truncate at {index} reaches into the snapshot")
        del self.entries[off:]

    def save_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def save_snapshot(self, snap: Snapshot) -> None:
        connects = self.term(snap.index) == snap.term
        kept = [e for e in self.entries if e.index > snap.index] if connects else []
        self.snapshot = snap
        self.entries = kept
