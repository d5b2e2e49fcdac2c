"""The core's output batch and the shell's contract for handling it.

The core never does I/O. It accumulates what must happen and hands it over as one
:class:`Ready`; the shell must handle it in this order, then call ``advance()``:

1. persist: :func:`persist` (snapshot, truncation, entries, then hard state; fsynced),
2. send ``messages`` (only now: a vote or an acknowledgement must never leave the node
   before the state it promises is on disk - persist-before-send),
3. if ``restore_snapshot``: load ``snapshot.data`` into the state machine,
4. apply ``committed_entries`` in order (``NORMAL`` entries with data are commands),
5. ``node.advance()``.

:class:`agent.raft.driver.RaftDriver` runs exactly this loop; shells use it rather than
writing their own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from agent.raft.messages import (
    AnyRaftMessage,
    Entry,
    HardState,
    PersistentState,
    Snapshot,
)

__all__ = ["LogStore", "RaftRole", "Ready", "SoftState", "needs_persist", "persist"]


class RaftRole(enum.StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile facts worth telling the application about (who leads); never persisted."""

    leader: int | None
    role: RaftRole


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the shell. Fields that did not change are ``None`` / empty."""

    hard_state: HardState | None
    """Set when the term or the vote changed (it then also carries the commit index of
    the moment). A commit index alone is volatile state and is not written for its own
    sake: a restarted node re-applies what its last hard state says is committed and
    learns the rest from the leader."""
    #: Delete log entries from this index on before appending ``entries``.
    truncate_from: int | None
    entries: tuple[Entry, ...]
    #: A snapshot to persist: our own compaction, or one installed by the leader.
    snapshot: Snapshot | None
    #: True when ``snapshot`` came from the leader and replaces the state machine.
    restore_snapshot: bool
    messages: tuple[AnyRaftMessage, ...]
    committed_entries: tuple[Entry, ...]
    soft_state: SoftState | None

    def is_empty(self) -> bool:
        return not (
            self.hard_state
            or self.truncate_from
            or self.entries
            or self.snapshot
            or self.messages
            or self.committed_entries
            or self.soft_state
        )


class LogStore(Protocol):
    """What the shell's storage offers; :mod:`agent.raft.storage` is the on-disk one."""

    def load(self) -> PersistentState:
        """The persisted state, as the core starts from it."""
        ...

    def append(self, entries: tuple[Entry, ...]) -> None:
        """Append entries that follow the last stored one; durable on return."""
        ...

    def truncate_from(self, index: int) -> None:
        """Delete entries with this index and above; durable on return."""
        ...

    def save_hard_state(self, hs: HardState) -> None:
        """Replace the hard state atomically; durable on return."""
        ...

    def save_snapshot(self, snap: Snapshot) -> None:
        """Replace the snapshot atomically and drop the entries it covers.

        Entries after ``snap.index`` are kept only if the log holds the entry
        (``snap.index``, ``snap.term``) or starts right after it; otherwise they belong to
        a diverged history and are dropped too.
        """
        ...


def needs_persist(rd: Ready) -> bool:
    """Whether ``rd`` has anything for the disk (hard state, truncation, entries or a
    snapshot). A Ready without any only sends, applies or reports, so an asynchronous
    shell may skip the round trip to its storage thread; its messages still wait for
    ``finish()``."""
    return (
        rd.hard_state is not None
        or rd.truncate_from is not None
        or bool(rd.entries)
        or rd.snapshot is not None
    )


def persist(store: LogStore, rd: Ready) -> None:
    """Write a Ready's durable part in the one safe order.

    Entries go before the hard state so a persisted commit index never points past the
    persisted log; a crash part-way leaves a mix of old and new state that is still safe,
    because no message of this Ready has been sent yet.
    """
    if rd.snapshot is not None:
        store.save_snapshot(rd.snapshot)
    if rd.truncate_from is not None:
        store.truncate_from(rd.truncate_from)
    if rd.entries:
        store.append(rd.entries)
    if rd.hard_state is not None:
        store.save_hard_state(rd.hard_state)
