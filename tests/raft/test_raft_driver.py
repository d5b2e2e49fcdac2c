"""The Ready loop (:class:`RaftDriver`): persist before send, queued inputs, compaction,
restores, soft-state reports. In memory only: no sockets, no files."""

from __future__ import annotations

import ast
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.raft import (
    AnyRaftMessage,
    AppendEntries,
    AppendResp,
    DriverBusy,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    LogStore,
    MemoryStorage,
    PersistentState,
    RaftDriver,
    RaftError,
    RaftHeartbeat,
    RaftHeartbeatResp,
    RaftNode,
    RaftRole,
    Ready,
    RequestVote,
    Snapshot,
    SoftState,
    VoteResp,
    needs_persist,
    persist,
)
from agent.raft.harness import MaxRandom


class RecordingStore(MemoryStorage):
    """A MemoryStorage that also records the name of every write, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def append(self, entries: tuple[Entry, ...]) -> None:
        self.writes.append("append")
        super().append(entries)

    def truncate_from(self, index: int) -> None:
        self.writes.append("truncate")
        super().truncate_from(index)

    def save_hard_state(self, hs: HardState) -> None:
        self.writes.append("hard_state")
        super().save_hard_state(hs)

    def save_snapshot(self, snap: Snapshot) -> None:
        self.writes.append("snapshot")
        super().save_snapshot(snap)


class Machine:
    """Records what the driver hands it; its snapshot is the list of applied commands."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.restores: list[Snapshot] = []
        self.snapshots_taken = 0

    @property
    def commands(self) -> list[bytes]:
        return [e.data for e in self.entries if e.kind == EntryKind.NORMAL and e.data]

    def apply(self, entry: Entry) -> None:
        self.entries.append(entry)

    def restore(self, snapshot: Snapshot) -> None:
        self.restores.append(snapshot)

    def snapshot(self) -> bytes:
        self.snapshots_taken += 1
        return b",".join(self.commands)


def new_node(
    node_id: int, peers: tuple[int, ...], state: PersistentState | None = None
) -> RaftNode:
    return RaftNode(node_id, peers, state or PersistentState(), MaxRandom(0), 10, 1)


def solo(
    compact_every: int = 0,
) -> tuple[RaftDriver, RecordingStore, Machine, list[AnyRaftMessage]]:
    """A single-voter node, elected."""
    store, machine = RecordingStore(), Machine()
    sent: list[AnyRaftMessage] = []
    d = RaftDriver(new_node(1, (1,)), store, machine, sent.append, compact_every=compact_every)
    d.campaign()
    d.run()
    assert d.node.role == RaftRole.LEADER
    return d, store, machine, sent


def check_promise(store: MemoryStorage, node: RaftNode, m: AnyRaftMessage) -> str | None:
    """Assert that ``store`` already holds what ``m`` promises; returns what was checked."""
    hs = store.hard_state
    if isinstance(m, VoteResp) and m.granted and not m.pre:
        assert (hs.term, hs.vote) == (m.term, m.dst), f"VoteResp sent before its vote: {hs}"
        return "vote granted"
    if isinstance(m, RequestVote) and not m.pre:
        assert (hs.term, hs.vote) == (m.term, m.src), f"RequestVote before own vote: {hs}"
        return "vote requested"
    if isinstance(m, AppendResp) and not m.reject:
        assert hs.term == m.term, f"AppendResp of term {m.term} but stored term {hs.term}"
        assert store.last_index >= m.index, f"AppendResp {m.index} but stored {store.last_index}"
        assert store.term(m.index) == node.log.term(m.index), f"entry {m.index} not stored"
        return "append acknowledged"
    if isinstance(m, AppendEntries) and m.entries:
        # Not a Raft requirement for a leader, but the driver never sends before persisting.
        assert store.last_index >= m.entries[-1].index, "AppendEntries before its entries"
        return "entries sent"
    return None


class Net:
    """Drivers joined by a FIFO queue; every send checks the sender's store first."""

    def __init__(
        self,
        ids: tuple[int, ...] = (1, 2, 3),
        *,
        persist_fn: Callable[[LogStore, Ready], None] = persist,
    ) -> None:
        self.persist_fn = persist_fn
        self.queue: deque[AnyRaftMessage] = deque()
        self.checked: Counter[str] = Counter()
        self.stores = {i: RecordingStore() for i in ids}
        self.machines = {i: Machine() for i in ids}
        self.soft: dict[int, list[SoftState]] = {i: [] for i in ids}
        self.drivers = {
            i: RaftDriver(
                new_node(i, ids),
                self.stores[i],
                self.machines[i],
                self._sender(i),
                on_soft_state=self.soft[i].append,
            )
            for i in ids
        }

    def _sender(self, i: int) -> Callable[[AnyRaftMessage], None]:
        def send(m: AnyRaftMessage) -> None:
            what = check_promise(self.stores[i], self.drivers[i].node, m)
            if what:
                self.checked[what] += 1
            self.queue.append(m)

        return send

    def settle(self) -> None:
        for d in self.drivers.values():
            d.run(self.persist_fn)
        for _ in range(10_000):
            if not self.queue:
                return
            m = self.queue.popleft()
            d = self.drivers[m.dst]
            d.step(m)
            d.run(self.persist_fn)
        raise AssertionError("did not settle")


# -- persist before send ----------------------------------------------------------------------
def test_every_message_leaves_only_after_what_it_promises_is_stored() -> None:
    net = Net()
    net.drivers[1].campaign()
    net.settle()
    for cmd in (b"a", b"b", b"c"):
        net.drivers[1].propose(cmd)
        net.settle()
    assert net.checked["vote granted"] == 2
    assert net.checked["vote requested"] == 2
    assert net.checked["append acknowledged"] >= 6
    assert net.checked["entries sent"] >= 6
    for i in (1, 2, 3):
        assert net.machines[i].commands == [b"a", b"b", b"c"]


def test_the_promise_check_catches_a_driver_run_without_persisting() -> None:
    """The check above has teeth: skip the writes and the first real vote request trips it."""
    net = Net(persist_fn=lambda store, rd: None)
    net.drivers[1].campaign()
    with pytest.raises(AssertionError, match="RequestVote before own vote"):
        net.settle()


def test_nothing_is_sent_between_next_ready_and_finish() -> None:
    store = RecordingStore()
    sent: list[AnyRaftMessage] = []
    d = RaftDriver(new_node(2, (1, 2, 3)), store, Machine(), sent.append)
    entry = Entry(1, 1, data=b"x")
    d.step(AppendEntries(1, 2, 1, prev_index=0, prev_term=0, entries=(entry,), commit=1))
    rd = d.next_ready()
    assert rd is not None and d.busy
    assert sent == [] and store.writes == []
    persist(store, rd)
    assert store.writes == ["append", "hard_state"]  # entries before the commit index
    assert sent == []
    d.finish(rd)
    assert not d.busy
    assert sent == [AppendResp(2, 1, 1, index=1)]


# -- inputs while busy --------------------------------------------------------------------------
def test_messages_while_busy_are_queued_and_stepped_in_order_after_finish() -> None:
    store = RecordingStore()
    sent: list[AnyRaftMessage] = []
    d = RaftDriver(new_node(2, (1, 2, 3)), store, Machine(), sent.append)
    d.step(RequestVote(1, 2, 1, last_index=0, last_term=0))
    rd = d.next_ready()
    assert rd is not None
    e1, e2 = Entry(1, 1, data=b"one"), Entry(2, 1, data=b"two")
    # In order these are accepted one after the other; the other way round the first
    # would be rejected (its predecessor missing).
    d.step(AppendEntries(1, 2, 1, prev_index=0, prev_term=0, entries=(e1,), commit=0))
    d.step(AppendEntries(1, 2, 1, prev_index=1, prev_term=1, entries=(e2,), commit=0))
    assert d.node.log.last_index == 0  # nothing reached the core yet
    assert d.next_ready() is None  # busy: no second Ready
    persist(store, rd)
    d.finish(rd)
    assert d.node.log.last_index == 2
    rd2 = d.next_ready()
    assert rd2 is not None
    assert rd2.entries == (e1, e2)
    assert rd2.messages == (AppendResp(2, 1, 1, index=1), AppendResp(2, 1, 1, index=2))


def test_ticks_while_busy_are_queued_and_fed_after_finish() -> None:
    store = RecordingStore()
    d = RaftDriver(new_node(3, (1, 2, 3)), store, Machine(), lambda m: None)
    d.step(RequestVote(1, 3, 1, last_index=0, last_term=0))  # grants: timer reset
    rd = d.next_ready()
    assert rd is not None
    for _ in range(2 * 10 - 1):  # MaxRandom: the election timeout is 19 ticks
        d.tick()
    roles = [d.node.role]
    persist(store, rd)
    d.finish(rd)
    roles.append(d.node.role)
    assert roles == [RaftRole.FOLLOWER, RaftRole.PRE_CANDIDATE]  # the queued ticks fired
    rd2 = d.next_ready()
    assert rd2 is not None
    assert {type(m) for m in rd2.messages} == {RequestVote}
    assert all(isinstance(m, RequestVote) and m.pre for m in rd2.messages)


def test_propose_while_busy_raises_driver_busy() -> None:
    d, store, _, _ = solo()
    assert d.propose(b"a") == 2
    rd = d.next_ready()
    assert rd is not None
    with pytest.raises(DriverBusy) as exc:
        d.propose(b"b")
    assert isinstance(exc.value, RaftError)
    text = str(exc.value)
    assert not text.endswith(".") and "\n" not in text and "proposal" in text
    assert d.node.log.last_index == 2  # the refused proposal did not reach the core
    persist(store, rd)
    d.finish(rd)
    assert d.propose(b"b") == 3


def test_finish_refuses_a_ready_it_did_not_hand_out() -> None:
    d, store, _, _ = solo()
    d.propose(b"a")
    rd = d.next_ready()
    assert rd is not None
    with pytest.raises(RuntimeError):
        d.finish(Ready(None, None, (), None, False, (), (), None))
    persist(store, rd)
    d.finish(rd)
    with pytest.raises(RuntimeError):
        d.finish(rd)  # not twice either


# -- compaction ---------------------------------------------------------------------------------
def test_compact_every_compacts_with_the_machines_snapshot_bytes() -> None:
    d, store, machine, _ = solo(compact_every=3)
    indexes = []
    for cmd in (b"a", b"b", b"c", b"d", b"e"):
        d.propose(cmd)
        d.run()
        indexes.append(store.snap_index)
    # Entry 1 is the bootstrap configuration; a snapshot every 3 applied entries.
    assert indexes == [0, 3, 3, 3, 6]
    assert store.snapshot is not None
    assert (store.snapshot.index, store.snapshot.data) == (6, b"a,b,c,d,e")
    assert d.node.log.snap_index == 6 and d.node.log.entries == []
    assert machine.snapshots_taken == 2
    assert machine.restores == []  # our own snapshot is not loaded back


def test_compact_every_zero_never_compacts() -> None:
    d, store, machine, _ = solo()
    for cmd in (b"a", b"b", b"c", b"d", b"e"):
        d.propose(cmd)
        d.run()
    assert store.snapshot is None and machine.snapshots_taken == 0
    assert d.node.log.last_index == 6


def test_compact_snapshots_the_applied_index_and_is_a_no_op_when_nothing_is_new() -> None:
    d, store, machine, _ = solo()
    d.propose(b"a")
    d.propose(b"b")
    d.run()
    d.compact()
    assert d.run() == 1
    assert store.snapshot == Snapshot(3, 1, (1,), b"a,b")
    d.compact()
    assert machine.snapshots_taken == 1
    assert d.next_ready() is None


def test_compact_while_busy_waits_for_finish() -> None:
    d, store, machine, _ = solo()
    d.propose(b"a")
    rd = d.next_ready()
    assert rd is not None
    d.compact()
    assert machine.snapshots_taken == 0
    persist(store, rd)
    d.finish(rd)  # applies entry 2, then runs the queued compaction
    assert d.node.log.snap_index == 2
    d.run()
    assert store.snapshot == Snapshot(2, 1, (1,), b"a")


# -- restores -----------------------------------------------------------------------------------
def test_a_snapshot_from_the_leader_restores_the_machine() -> None:
    store, machine = RecordingStore(), Machine()
    sent: list[AnyRaftMessage] = []
    d = RaftDriver(new_node(2, (1, 2, 3)), store, machine, sent.append)
    snap = Snapshot(5, 1, (1, 2, 3), b"leader-state")
    d.step(InstallSnapshot(1, 2, 1, snapshot=snap))
    assert d.run() == 1
    assert machine.restores == [snap]
    assert machine.entries == []
    assert d.applied == 5
    assert store.snapshot == snap
    assert sent == [AppendResp(2, 1, 1, index=5)]


def test_start_restores_the_snapshot_on_disk_then_replays_committed_entries() -> None:
    snap = Snapshot(5, 2, (1, 2, 3), b"on-disk")
    after = (Entry(6, 2, data=b"six"), Entry(7, 2, data=b"seven"), Entry(8, 2, data=b"eight"))
    state = PersistentState(HardState(2, 1, 7), snap, after)
    machine = Machine()
    d = RaftDriver(
        new_node(2, (1, 2, 3), state), MemoryStorage(), machine, lambda m: None, snapshot=snap
    )
    assert machine.restores == [snap]
    assert d.applied == 5
    d.run()
    assert [e.index for e in machine.entries] == [6, 7]  # 8 is not committed
    assert d.applied == 7


# -- soft state -----------------------------------------------------------------------------
def test_on_soft_state_hears_every_change_of_leader() -> None:
    net = Net()
    net.drivers[1].campaign()
    net.settle()
    assert net.soft[1] == [
        SoftState(None, RaftRole.PRE_CANDIDATE),
        SoftState(None, RaftRole.CANDIDATE),
        SoftState(1, RaftRole.LEADER),
    ]
    assert net.soft[2] == [SoftState(1, RaftRole.FOLLOWER)]
    net.drivers[1].transfer_leadership(3)
    net.settle()
    assert net.soft[3][-1] == SoftState(3, RaftRole.LEADER)
    assert net.soft[1][-1] == SoftState(3, RaftRole.FOLLOWER)
    assert net.soft[2][-1] == SoftState(3, RaftRole.FOLLOWER)


# -- run --------------------------------------------------------------------------------------
def test_run_returns_how_many_readys_it_handled() -> None:
    d, _, _, _ = solo(compact_every=2)
    d.propose(b"a")
    assert d.run() == 2  # the entry, then the compaction it triggered
    d.propose(b"b")
    assert d.run() == 1
    assert d.run() == 0
    calls: list[Ready] = []
    d.propose(b"c")
    d.propose(b"d")
    assert d.run(lambda store, rd: calls.append(rd)) == 2
    assert [e.data for e in calls[0].entries] == [b"c", b"d"]
    assert calls[1].snapshot is not None and calls[1].snapshot.index == 5


# -- needs_persist ------------------------------------------------------------------------------
def _ready(**fields: object) -> Ready:
    base: dict[str, object] = {
        "hard_state": None,
        "truncate_from": None,
        "entries": (),
        "snapshot": None,
        "restore_snapshot": False,
        "messages": (),
        "committed_entries": (),
        "soft_state": None,
    }
    base.update(fields)
    return Ready(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"hard_state": HardState(1, None, 0)}, True),
        ({"truncate_from": 4}, True),
        ({"entries": (Entry(1, 1),)}, True),
        ({"snapshot": Snapshot(3, 1, (1,))}, True),
        ({"messages": (AppendResp(2, 1, 1, index=1),)}, False),
        (
            {"committed_entries": (Entry(1, 1),), "soft_state": SoftState(1, RaftRole.FOLLOWER)},
            False,
        ),
        ({}, False),
    ],
)
def test_needs_persist(fields: dict[str, object], expected: bool) -> None:
    assert needs_persist(_ready(**fields)) is expected


def test_a_heartbeat_answer_needs_no_disk() -> None:
    net = Net()
    net.drivers[1].campaign()
    net.settle()
    d2 = net.drivers[2]
    d2.step(RaftHeartbeat(1, 2, 1, commit=d2.node.log.committed))
    rd = d2.next_ready()
    assert rd is not None
    assert rd.messages == (RaftHeartbeatResp(2, 1, 1),)
    assert not needs_persist(rd)


# -- purity ----------------------------------------------------------------------------------
PURE = ("core", "log", "progress", "messages", "ready", "errors", "driver", "memory")
FORBIDDEN = {"asyncio", "zmq", "socket", "os", "time", "random"}


def runtime_imports(path: Path) -> set[str]:
    """Top-level modules imported by ``path`` outside ``if TYPE_CHECKING:`` blocks."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for n in nodes:
            if isinstance(n, ast.If) and ast.unparse(n.test) in (
                "TYPE_CHECKING",
                "typing.TYPE_CHECKING",
            ):
                visit(n.orelse)
                continue
            for sub in ast.walk(n):
                if isinstance(sub, ast.Import):
                    found.update(a.name.split(".")[0] for a in sub.names)
                elif isinstance(sub, ast.ImportFrom) and sub.module and not sub.level:
                    found.add(sub.module.split(".")[0])

    visit(ast.parse(path.read_text()).body)
    return found


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io_clock_or_randomness(module: str) -> None:
    path = Path(__file__).parents[2] / "agent" / "raft" / f"{module}.py"
    assert not runtime_imports(path) & FORBIDDEN


def test_the_purity_check_sees_imports() -> None:
    sim = Path(__file__).parents[2] / "agent" / "raft" / "sim.py"
    assert {"random", "time"} <= runtime_imports(sim)
    core = Path(__file__).parents[2] / "agent" / "raft" / "core.py"
    assert "random" in core.read_text() and "random" not in runtime_imports(core)
