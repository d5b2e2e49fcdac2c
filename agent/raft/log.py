"""The core's in-memory view of its log: snapshot point, entries, commit and apply cursors.

It also remembers what the shell has not yet been handed (new entries, a truncation), so
the core can put exactly the changes into the next ``Ready``, and it tracks the voter set,
because a configuration takes effect as soon as its entry is in the log (appended, not
committed) and must be reverted if that entry is truncated.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.raft.messages import Entry, EntryKind, Snapshot, decode_conf_change

__all__ = ["LogInvariantError", "RaftLog"]


class LogInvariantError(AssertionError):
    """The core was asked to do something Raft forbids (a bug, never an operator error)."""


class RaftLog:
    """Entries ``first_index .. last_index`` after an optional snapshot at ``snap_index``."""

    def __init__(
        self,
        snapshot: Snapshot | None,
        entries: Sequence[Entry],
        committed: int,
        initial_voters: tuple[int, ...],
    ) -> None:
        self.snapshot = snapshot
        self.snap_index = snapshot.index if snapshot else 0
        self.snap_term = snapshot.term if snapshot else 0
        self.entries: list[Entry] = list(entries)
        for i, e in enumerate(self.entries):
            if e.index != self.snap_index + 1 + i:
                raise LogInvariantError(f"entry {e.index} is not contiguous after the snapshot")
        if committed > self.last_index:
            raise LogInvariantError(f"commit {committed} is past the last index {self.last_index}")
        self.committed = max(committed, self.snap_index)
        #: Entries up to here were handed to the application (or are covered by a snapshot).
        self.applied = self.snap_index
        #: Last index handed to the shell for persisting.
        self.stable = self.last_index
        #: Lowest index the shell must delete before appending, if any.
        self.pending_truncate: int | None = None
        # Voter sets: the one in force at the snapshot point, then one per CONF entry.
        self._base_voters = snapshot.voters if snapshot else tuple(sorted(initial_voters))
        self._confs: list[tuple[int, tuple[int, ...]]] = []
        for e in self.entries:
            self._note_conf(e)

    # -- reads ---------------------------------------------------------------------------
    @property
    def first_index(self) -> int:
        return self.snap_index + 1

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snap_term

    @property
    def voters(self) -> tuple[int, ...]:
        """The configuration in force: the latest one in the log, committed or not."""
        return self._confs[-1][1] if self._confs else self._base_voters

    @property
    def conf_index(self) -> int:
        """Index of the latest configuration entry still in the log (0 if none)."""
        return self._confs[-1][0] if self._confs else 0

    def voters_at(self, index: int) -> tuple[int, ...]:
        """The configuration in force once entries up to ``index`` are in the log."""
        voters = self._base_voters
        for ci, v in self._confs:
            if ci > index:
                break
            voters = v
        return voters

    def term(self, index: int) -> int | None:
        """Term of the entry at ``index``; ``None`` if compacted away or not in the log."""
        if index == self.snap_index:
            return self.snap_term
        off = index - self.snap_index - 1
        if 0 <= off < len(self.entries):
            return self.entries[off].term
        return None

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Election restriction: is a candidate's log at least as up to date as ours?"""
        mine = self.last_term
        return last_term > mine or (last_term == mine and last_index >= self.last_index)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with ``lo <= index < hi``; ``lo`` must not be compacted."""
        if lo <= self.snap_index:
            raise LogInvariantError(f"entries from {lo} are compacted (snapshot {self.snap_index})")
        return self.entries[lo - self.snap_index - 1 : hi - self.snap_index - 1]

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest index <= ``index`` whose term is <= ``term`` (and that term).

        Used in both directions of fast backtracking: the follower hints where its log may
        still agree, and the leader jumps to the same point in its own log.
        """
        index = min(index, self.last_index)
        while True:
            t = self.term(index)
            if t is None:
                return index, 0
            if t <= term:
                return index, t
            index -= 1

    # -- writes --------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        """Leader path: add entries right after the last one."""
        for e in entries:
            if e.index != self.last_index + 1:
                raise LogInvariantError(f"append of {e.index} after {self.last_index}")
            self.entries.append(e)
            self._note_conf(e)

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: Sequence[Entry]
    ) -> int | None:
        """Follower path. Returns the last index now known to match the leader, or ``None``
        if our log has no entry (prev_index, prev_term)."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        for i, e in enumerate(entries):
            t = self.term(e.index)
            if t == e.term:
                continue
            if t is not None:
                if e.index <= self.committed:
                    raise LogInvariantError(
                        f"entry {e.index} conflicts with the committed prefix ({self.committed})"
                    )
                self.truncate_from(e.index)
            self.append(entries[i:])
            break
        self.commit_to(min(commit, last_new))
        return last_new

    def truncate_from(self, index: int) -> None:
        """Drop entries with ``index`` and above (never committed ones)."""
        if index <= self.committed:
            raise LogInvariantError(f"truncating {index} would drop committed entries")
        if index > self.last_index:
            return
        del self.entries[index - self.snap_index - 1 :]
        while self._confs and self._confs[-1][0] >= index:
            self._confs.pop()
        if index <= self.stable:
            self.stable = index - 1
            if self.pending_truncate is None or index < self.pending_truncate:
                self.pending_truncate = index

    def commit_to(self, index: int) -> bool:
        """Raise the commit index (never lowers it). Returns whether it moved."""
        if index <= self.committed:
            return False
        if index > self.last_index:
            raise LogInvariantError(f"commit {index} beyond last index {self.last_index}")
        self.committed = index
        return True

    def compact(self, snapshot: Snapshot) -> None:
        """Drop the applied prefix up to ``snapshot.index`` (the application's own snapshot)."""
        off = snapshot.index - self.snap_index
        self._base_voters = self.voters_at(snapshot.index)
        self._confs = [c for c in self._confs if c[0] > snapshot.index]
        del self.entries[:off]
        self.snapshot = snapshot
        self.snap_index = snapshot.index
        self.snap_term = snapshot.term

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot from the leader (our log disagrees with it)."""
        old_stable = self.stable
        self.snapshot = snapshot
        self.snap_index = snapshot.index
        self.snap_term = snapshot.term
        self.entries = []
        self._base_voters = snapshot.voters
        self._confs = []
        self.committed = snapshot.index
        self.applied = snapshot.index
        self.stable = snapshot.index
        # Whatever the shell holds after the snapshot point is from a diverged history.
        if old_stable > snapshot.index or self.pending_truncate is not None:
            self.pending_truncate = snapshot.index + 1
        else:
            self.pending_truncate = None

    # -- hand-over to the shell ----------------------------------------------------------
    def unstable_entries(self) -> list[Entry]:
        return self.entries[self.stable - self.snap_index :]

    def next_committed(self) -> list[Entry]:
        return self.entries[self.applied - self.snap_index : self.committed - self.snap_index]

    def _note_conf(self, e: Entry) -> None:
        if e.kind == EntryKind.CONF:
            self._confs.append((e.index, decode_conf_change(e.data).voters))
