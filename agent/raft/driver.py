"""The Ready loop, written once: persist, then send, restore, apply, advance.

:class:`RaftDriver` owns one :class:`~agent.raft.core.RaftNode`, its
:class:`~agent.raft.ready.LogStore` and the application's :class:`StateMachine`. A shell
hands it ticks, messages and proposals and, whenever :meth:`RaftDriver.next_ready`
returns a :class:`~agent.raft.ready.Ready`, persists it (synchronously, on a thread, or
in a batch) and calls :meth:`RaftDriver.finish`, which does the rest in the one safe
order. Between the two the driver is *busy*: ticks and messages are queued and fed to the
core right after ``finish()``, proposals are refused with :class:`DriverBusy`.

Persist-before-send is the contract: no message of a Ready is sent before ``finish()``,
that is before the caller says the Ready is durable.

Like the core, this module does no I/O and reads no clock or global randomness; the
golden-test harness, the simulator and the monitor all drive Raft through it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Protocol

from agent.raft.core import RaftNode
from agent.raft.errors import DriverBusy
from agent.raft.messages import AnyRaftMessage, ConfOp, Entry, Snapshot
from agent.raft.ready import LogStore, Ready, SoftState, persist

__all__ = ["RaftDriver", "StateMachine"]


class StateMachine(Protocol):
    """The replicated application, as the driver feeds it."""

    def apply(self, entry: Entry) -> None:
        """Every committed entry, in log order. ``NORMAL`` entries with data are commands;
        ``CONF`` entries and the leaders' empty entries come too, so that a machine can
        track its applied index."""
        ...

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole state with ``snapshot.data`` (a snapshot from the leader, or
        the one on disk when the node starts)."""
        ...

    def snapshot(self) -> bytes:
        """The state's bytes at the applied index, for compaction."""
        ...


class RaftDriver:
    """Runs the Ready loop of one node.

    ``snapshot`` is what ``store.load()`` returned as the snapshot (if any): the machine is
    restored from it here, and the first Readys re-deliver the committed entries after it.
    ``compact_every`` > 0 compacts the log after that many applied entries past the last
    snapshot (0: only when :meth:`compact` is called). ``on_soft_state`` hears of every
    change of leader or role, after the Ready's entries were applied.
    """

    __slots__ = (
        "_applied",
        "_on_soft_state",
        "_out",
        "_queued",
        "_send",
        "compact_every",
        "machine",
        "node",
        "store",
    )

    def __init__(
        self,
        node: RaftNode,
        store: LogStore,
        machine: StateMachine,
        send: Callable[[AnyRaftMessage], None],
        *,
        snapshot: Snapshot | None = None,
        compact_every: int = 0,
        on_soft_state: Callable[[SoftState], None] | None = None,
    ) -> None:
        if compact_every < 0:
            raise ValueError(f"compact_every must be 0 (never) or positive, got {compact_every}")
        #: The core. Callers may read it (role, term, lead, log) but feed it only through
        #: the driver.
        self.node = node
        self.store = store
        self.machine = machine
        self.compact_every = compact_every
        self._send = send
        self._on_soft_state = on_soft_state
        self._out: Ready | None = None
        self._queued: deque[Callable[[], None]] = deque()
        self._applied = 0
        if snapshot is not None:
            machine.restore(snapshot)
            self._applied = snapshot.index

    # ---------------------------------------------------------------- state
    @property
    def busy(self) -> bool:
        """A Ready has been handed out and :meth:`finish` has not been called for it."""
        return self._out is not None

    @property
    def applied(self) -> int:
        """Index of the last entry the machine applied (or of the snapshot it restored)."""
        return self._applied

    # ---------------------------------------------------------------- inputs
    def tick(self) -> None:
        """One unit of logical time (queued while busy)."""
        self._feed(self.node.tick)

    def step(self, msg: AnyRaftMessage) -> None:
        """A message from a peer (queued while busy)."""
        self._feed(partial(self.node.step, msg))

    def campaign(self) -> None:
        """Start an election now (queued while busy)."""
        self._feed(self.node.campaign)

    def _feed(self, action: Callable[[], None]) -> None:
        """Run an input now, or, while a Ready is out, once it is finished."""
        if self._out is None:
            action()
        else:
            self._queued.append(action)

    def propose(self, data: bytes) -> int:
        """The core's :meth:`~agent.raft.core.RaftNode.propose`; raises :class:`DriverBusy`
        while a Ready is out (a proposal's answer cannot wait in a queue)."""
        self._idle()
        return self.node.propose(data)

    def propose_conf_change(self, op: ConfOp, node: int) -> int:
        """The core's ``propose_conf_change``; raises :class:`DriverBusy` while busy."""
        self._idle()
        return self.node.propose_conf_change(op, node)

    def transfer_leadership(self, to: int) -> None:
        """The core's ``transfer_leadership``; raises :class:`DriverBusy` while busy."""
        self._idle()
        self.node.transfer_leadership(to)

    def compact(self) -> None:
        """Snapshot the machine at the applied index and drop the log before it (no-op if
        nothing was applied since the last snapshot). While busy it is queued."""
        self._feed(self._compact_now)

    # ---------------------------------------------------------------- the loop
    def next_ready(self) -> Ready | None:
        """The next batch to persist, or ``None`` if there is nothing to do or a Ready is
        already out. The driver is busy until :meth:`finish` is called with it."""
        if self._out is not None or not self.node.has_ready():
            return None
        rd = self._out = self.node.ready()
        return rd

    def finish(self, rd: Ready) -> None:
        """``rd`` is durable: send its messages, restore and apply, tell ``on_soft_state``,
        advance the core, compact if due, then feed the inputs that were queued."""
        if rd is not self._out:
            raise RuntimeError("finish() takes the Ready that next_ready() handed out")
        send = self._send
        for m in rd.messages:
            send(m)
        machine = self.machine
        if rd.restore_snapshot and rd.snapshot is not None:
            machine.restore(rd.snapshot)
            self._applied = rd.snapshot.index
        for e in rd.committed_entries:
            machine.apply(e)
            self._applied = e.index
        if rd.soft_state is not None and self._on_soft_state is not None:
            self._on_soft_state(rd.soft_state)
        self.node.advance()
        self._out = None
        if self.compact_every and self._applied - self.node.log.snap_index >= self.compact_every:
            self._compact_now()
        queued = self._queued
        while queued:
            queued.popleft()()

    def run(self, persist_fn: Callable[[LogStore, Ready], None] = persist) -> int:
        """Handle Readys synchronously until there is none: ``persist_fn(store, rd)``,
        then :meth:`finish`. Returns how many it handled."""
        count = 0
        while (rd := self.next_ready()) is not None:
            persist_fn(self.store, rd)
            self.finish(rd)
            count += 1
        return count

    # ---------------------------------------------------------------- helpers
    def _idle(self) -> None:
        if self._out is not None:
            raise DriverBusy()

    def _compact_now(self) -> None:
        if self._applied > self.node.log.snap_index:
            self.node.compact(self._applied, self.machine.snapshot())
