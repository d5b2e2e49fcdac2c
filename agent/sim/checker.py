"""The invariants of the whole-node simulation, checked as the world runs.

- **one leader per term**: no two monitors lead in the same term (after every step);
- **committed entries never change**: once any monitor's persisted commit index covers
  an entry, every monitor that commits that index commits the same entry; and every
  node's cached map at epoch e is the one map of epoch e (after every step);
- **the heard are never voted down**: when a leader first writes ``down`` for node X to
  its log, X must not have been heard, throughout the window that decision could rest
  on, by a majority of the electorate (judged from the heartbeats the network actually
  delivered, with the detector's own rule of what is a fresh sign of life);
- **the dead are voted down in time**: checked by the probes (:mod:`agent.sim.world`)
  against :func:`agent.sim.bounds.down_bound`.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from agent.clustermap import ClusterMap, SetNodeStates, decode_command, encode_map
from agent.config import TimingConfig
from agent.core.quorum import majority
from agent.core.vote import report_ttl
from agent.raft import (
    Entry,
    EntryKind,
    HardState,
    MemoryStorage,
    PersistentState,
    RaftRole,
    Snapshot,
)
from agent.sim.bounds import Assumptions

_RETIRED = 8


class Violation(AssertionError):
    """An invariant failed; the message names the seed, the virtual time and what broke."""

    def __init__(self, seed: int, at: float, what: str) -> None:
        self.seed = seed
        self.at = at
        self.what = what
        replay = f"python -m agent.sim --seed {seed} --trace"
        super().__init__(f"seed {seed} at t={at:.3f} s: {what} - replay: {replay}")


def _reraise(exc: Violation) -> None:
    raise exc


class _HbId(msgspec.Struct):
    incarnation: int
    seq: int


_hb_id = msgspec.msgpack.Decoder(_HbId)


@dataclass(slots=True)
class _Hearing:
    """What one node has heard of another: the fresh heartbeats' arrival times."""

    incarnation: int = -1
    seq: int = -1
    retired: deque[int] = field(default_factory=lambda: deque(maxlen=_RETIRED))
    times: deque[float] = field(default_factory=deque)

    def fresh(self, incarnation: int, seq: int) -> bool:
        """The detector's rule (agent.core.failure): a higher seq, or a new incarnation."""
        if incarnation != self.incarnation:
            if incarnation in self.retired:
                return False
            if self.incarnation != -1:
                self.retired.append(self.incarnation)
            self.incarnation, self.seq = incarnation, seq
            return True
        if seq <= self.seq:
            return False
        self.seq = seq
        return True


class RecordingStore:
    """A monitor's Raft log in memory (it survives reboots), telling the checker what is
    written: entries when they are first persisted, commit indexes as they advance."""

    def __init__(self, name: str, checker: Checker) -> None:
        self.name = name
        self.mem = MemoryStorage()
        self.checker = checker

    def load(self) -> PersistentState:
        return self.mem.load()

    def append(self, entries: tuple[Entry, ...]) -> None:
        self.mem.append(entries)
        self.checker.guard(self.checker.appended, self.name, entries)

    def truncate_from(self, index: int) -> None:
        self.mem.truncate_from(index)

    def save_hard_state(self, hs: HardState) -> None:
        self.mem.save_hard_state(hs)

    def save_snapshot(self, snap: Snapshot) -> None:
        self.mem.save_snapshot(snap)

    def entry(self, index: int) -> Entry | None:
        off = index - self.mem.snap_index - 1
        return self.mem.entries[off] if 0 <= off < len(self.mem.entries) else None


class Checker:
    def __init__(
        self,
        seed: int,
        now: Callable[[], float],
        timing: TimingConfig,
        assume: Assumptions,
        trace: Callable[[str], None] | None,
    ) -> None:
        self.seed = seed
        self.now = now
        self.trace = trace
        self.leader_of_term: dict[int, str] = {}
        self.roles: dict[str, RaftRole] = {}
        self.attempts = 0
        """Election attempts (a monitor turning pre-candidate) since the counter was reset."""
        self.committed_facts: dict[int, tuple[int, bytes]] = {}
        self.first_written: dict[tuple[int, int], float] = {}
        self.downs: list[tuple[float, str]] = []
        """(time committed, node) of every committed ``down``."""
        self.on_down: Callable[[str, float], None] | None = None
        """Told of each committed ``down`` (a probe waits on it)."""
        self.map_digest: dict[int, int] = {}
        self.hearing: dict[tuple[str, str], _Hearing] = {}
        self.maps: Callable[[str], ClusterMap | None] = lambda _n: None
        self.on_violation: Callable[[Violation], None] = _reraise
        k = 1.0 / (1.0 - assume.drift)
        self.gap = timing.dead_after / (1.0 + assume.drift) - 1e-6
        """Shortest true silence after which some node's detector may call a peer dead."""
        self.lookback = report_ttl(timing.dead_after) * k + assume.delay_max + assume.fsync_max
        """How far back the reports a vote counts were sent."""
        self.keep = self.lookback + self.gap + 1.0

    def fail(self, what: str) -> Violation:
        return Violation(self.seed, self.now(), what)

    def guard(self, check: Callable[..., None], *args: Any) -> None:
        """Run a check from inside the node code: a violation stops the world instead of
        surfacing as an exception of the node that happened to call it."""
        try:
            check(*args)
        except Violation as exc:
            self.on_violation(exc)

    def _note(self, text: str) -> None:
        if self.trace is not None:
            self.trace(f"t={self.now():9.3f}   . {text}")

    # ---- after every step ------------------------------------------------------------

    def role(self, name: str, role: RaftRole, term: int) -> None:
        """A running monitor's (role, term) after a step; cheap when nothing changed."""
        if role is self.roles.get(name):
            return
        self.roles[name] = role
        if role == RaftRole.PRE_CANDIDATE:
            self.attempts += 1
        elif role == RaftRole.LEADER:
            other = self.leader_of_term.setdefault(term, name)
            if other != name:
                raise self.fail(f"two leaders in term {term}: {other} and {name}")
            self._note(f"{name} leads in term {term}")

    def cached_map(self, node: str, cmap: ClusterMap) -> None:
        """A node's cache (or a monitor's state machine) now holds ``cmap``."""
        digest = zlib.crc32(encode_map(cmap))
        known = self.map_digest.setdefault(cmap.epoch, digest)
        if known != digest:
            raise self.fail(f"{node} holds a map of epoch {cmap.epoch} that no other node has")

    # ---- the network's trace ---------------------------------------------------------

    def delivered(self, src: str, dst: str, kind: str, frames: list[bytes]) -> None:
        if kind != "published" or not frames[0].startswith(b"hb.") or len(frames) < 3:
            return
        try:
            hb = _hb_id.decode(frames[2])
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        hearing = self.hearing.setdefault((src, dst), _Hearing())
        if hearing.fresh(hb.incarnation, hb.seq):
            now = self.now()
            hearing.times.append(now)
            while hearing.times and hearing.times[0] < now - self.keep:
                hearing.times.popleft()

    def heard_throughout(self, src: str, dst: str, start: float, end: float) -> bool:
        """Whether ``dst`` had a fresh heartbeat of ``src`` at least every ``gap`` seconds
        over [start, end] (counting from the last one before ``start``)."""
        hearing = self.hearing.get((src, dst))
        if hearing is None:
            return False
        last = None
        for t in hearing.times:
            if t > end:
                break
            if t <= start - self.gap:
                continue
            if last is None:
                if t > start:  # nothing fresh in (start - gap, start]
                    return False
            elif t - last >= self.gap:
                return False
            last = t
        return last is not None and end - last < self.gap

    # ---- what monitors write ---------------------------------------------------------

    def appended(self, monitor: str, entries: tuple[Entry, ...]) -> None:
        now = self.now()
        for e in entries:
            if (e.index, e.term) in self.first_written:
                continue
            self.first_written[(e.index, e.term)] = now
            if e.kind == EntryKind.NORMAL and e.data:
                self._check_proposal(monitor, e, now)

    def _check_proposal(self, monitor: str, e: Entry, now: float) -> None:
        try:
            cmd = decode_command(e.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if not isinstance(cmd, SetNodeStates):
            return
        cmap = self.maps(monitor)
        if cmap is None:
            return
        electorate = [n for n, info in cmap.nodes.items() if info.state != "out"]
        start = now - self.lookback
        for change in cmd.changes:
            if change.state != "down":
                continue
            hearers = [
                y
                for y in electorate
                if y != change.name and self.heard_throughout(change.name, y, start, now)
            ]
            self._note(f"{monitor} proposes {change.name} down; heard throughout by {hearers}")
            if len(hearers) >= majority(len(electorate)):
                raise self.fail(
                    f"{monitor} proposed {change.name} down at index {e.index}, but "
                    f"{', '.join(hearers)} (a majority of {len(electorate)}) heard it "
                    f"throughout the last {now - start:.2f} s"
                )

    def applied(self, monitor: str, store: RecordingStore, after: int, upto: int) -> None:
        """``monitor``'s state machine applied entries ``after + 1 .. upto`` (only
        committed entries are applied: the commit index itself is volatile)."""
        for index in range(max(after, store.mem.snap_index) + 1, upto + 1):
            entry = store.entry(index)
            if entry is None:
                continue
            fact = (entry.term, entry.data)
            known = self.committed_facts.setdefault(index, fact)
            if known != fact:
                raise self.fail(
                    f"{monitor} committed entry {index} as term {entry.term}, another "
                    f"monitor committed term {known[0]} there"
                )
            if known is fact and entry.kind == EntryKind.NORMAL and entry.data:
                self._note_commit(entry)

    def _note_commit(self, entry: Entry) -> None:
        try:
            cmd = decode_command(entry.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if isinstance(cmd, SetNodeStates):
            for change in cmd.changes:
                self._note(f"committed: {change.name} {change.state} (index {entry.index})")
                if change.state == "down":
                    self.downs.append((self.now(), change.name))
                    if self.on_down is not None:
                        self.on_down(change.name, self.now())
