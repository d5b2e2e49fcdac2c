"""A deterministic in-process cluster for tests and golden scripts (like etcd's rafttest).

Messages travel through one FIFO queue, links can be cut, nodes can crash and restart
from their :class:`MemoryStorage`; nothing is random unless the caller's ``rng`` is. Each
node runs the shell loop through its :class:`RaftDriver`: persist, send, restore, apply,
advance.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

import msgspec

from agent.raft.core import RaftNode
from agent.raft.driver import RaftDriver
from agent.raft.memory import MemoryStorage
from agent.raft.messages import (
    AnyRaftMessage,
    ConfOp,
    Entry,
    EntryKind,
    Snapshot,
    decode_conf_change,
)
from agent.raft.ready import Ready, persist

__all__ = ["Cluster", "MaxRandom", "NodeFactory"]

NodeFactory = Callable[..., RaftNode]

_applied_codec = msgspec.msgpack.Decoder(list[tuple[int, int, bytes]])


class AppliedCommands:
    """The harness's state machine: the ``(index, term, data)`` of every command applied.

    ``commands`` is one list for the machine's whole life (a restore refills it), so a
    reference taken from :attr:`Cluster.applied` stays current."""

    __slots__ = ("commands",)

    def __init__(self) -> None:
        self.commands: list[tuple[int, int, bytes]] = []

    def apply(self, entry: Entry) -> None:
        if entry.kind == EntryKind.NORMAL and entry.data:
            self.commands.append((entry.index, entry.term, entry.data))

    def restore(self, snapshot: Snapshot) -> None:
        self.commands[:] = _applied_codec.decode(snapshot.data)

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(self.commands)


class MaxRandom(random.Random):
    """Always draws the largest value, so every election timeout is ``2 * election - 1``
    and a script's outcome never depends on chance."""

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        return (start if stop is None else stop) - 1


class Cluster:
    """Nodes ``ids`` bootstrapped as one configuration, plus a reliable FIFO network."""

    def __init__(
        self,
        ids: Iterable[int] = (1, 2, 3),
        *,
        election_ticks: int = 10,
        heartbeat_ticks: int = 1,
        rng: Callable[[int], random.Random] | None = None,
        node_factory: NodeFactory = RaftNode,
    ) -> None:
        self.ids = tuple(ids)
        self.election_ticks = election_ticks
        self.heartbeat_ticks = heartbeat_ticks
        self._rng: Callable[[int], random.Random] = rng or MaxRandom
        self._factory = node_factory
        self.stores: dict[int, MemoryStorage] = {i: MemoryStorage() for i in self.ids}
        self.peers: dict[int, tuple[int, ...]] = {i: self.ids for i in self.ids}
        self.nodes: dict[int, RaftNode] = {}
        self.drivers: dict[int, RaftDriver] = {}
        #: Per node: the (index, term, data) of every command it applied, in order.
        self.applied: dict[int, list[tuple[int, int, bytes]]] = {}
        self.queue: deque[AnyRaftMessage] = deque()
        self.cut: set[tuple[int, int]] = set()
        self.down: set[int] = set()
        for i in self.ids:
            self._start(i)

    # -- lifecycle -----------------------------------------------------------------------
    def _start(self, node_id: int) -> None:
        store = self.stores[node_id]
        state = store.load()
        node = self._factory(
            node_id,
            self.peers[node_id],
            state,
            self._rng(node_id),
            self.election_ticks,
            self.heartbeat_ticks,
        )
        machine = AppliedCommands()
        self.nodes[node_id] = node
        self.drivers[node_id] = RaftDriver(
            node, store, machine, self.queue.append, snapshot=state.snapshot
        )
        self.applied[node_id] = machine.commands

    def add_node(self, node_id: int) -> None:
        """A fresh, empty node that waits to be added by a configuration change."""
        self.stores[node_id] = MemoryStorage()
        self.peers[node_id] = ()
        self._start(node_id)
        self.process(node_id)

    def crash(self, node_id: int) -> None:
        self.down.add(node_id)
        del self.nodes[node_id]
        del self.drivers[node_id]

    def restart(self, node_id: int) -> None:
        """Rebuild the node from its store alone and run its first Ready (re-applying
        the committed entries after its snapshot, as a restarted shell does)."""
        self.down.discard(node_id)
        self._start(node_id)
        self.process(node_id)

    # -- network -------------------------------------------------------------------------
    def isolate(self, node_id: int) -> None:
        others = [i for i in self.stores if i != node_id]
        self.partition([node_id], others)

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut every link between different groups (both directions)."""
        sets = [set(g) for g in groups]
        for a_i, a in enumerate(sets):
            for b_i, b in enumerate(sets):
                if a_i != b_i:
                    self.cut.update((x, y) for x in a for y in b)

    def heal(self) -> None:
        self.cut.clear()

    # -- driving -------------------------------------------------------------------------
    def process(self, node_id: int) -> Ready | None:
        """Handle one Ready of ``node_id``, if it has one: persist it, then let the
        driver send (onto the FIFO queue), restore, apply and advance."""
        driver = self.drivers.get(node_id)
        if driver is None:
            return None
        rd = driver.next_ready()
        if rd is None:
            return None
        persist(driver.store, rd)
        driver.finish(rd)
        return rd

    def flush(self) -> None:
        for i in sorted(self.nodes):
            self.process(i)

    def stabilize(self, limit: int = 10_000) -> None:
        """Deliver messages (FIFO) until no node has anything more to say."""
        self.flush()
        for _ in range(limit):
            if not self.queue:
                return
            msg = self.queue.popleft()
            driver = self.drivers.get(msg.dst)
            if driver is None or (msg.src, msg.dst) in self.cut:
                continue
            driver.step(msg)
            self.process(msg.dst)
        raise RuntimeError("the cluster did not stabilise")

    def tick(self, node_ids: Iterable[int] | None = None, count: int = 1) -> None:
        """Tick the given nodes ``count`` times, letting the network settle after each."""
        ids = sorted(self.nodes) if node_ids is None else list(node_ids)
        for _ in range(count):
            for i in ids:
                if i in self.drivers:
                    self.drivers[i].tick()
            self.stabilize()

    def snapshot_data(self, node_id: int) -> bytes:
        return self.drivers[node_id].machine.snapshot()

    def compact(self, node_id: int) -> None:
        """Snapshot ``node_id`` at its applied index."""
        self.drivers[node_id].compact()
        self.process(node_id)

    def leader(self) -> int | None:
        """The leader with the highest term, if any node thinks it leads."""
        leaders = [n for n in self.nodes.values() if n.lead == n.id]
        if not leaders:
            return None
        return max(leaders, key=lambda n: n.term).id

    def log_lines(self, node_id: int) -> list[str]:
        node = self.nodes[node_id]
        lines = []
        if node.log.snap_index:
            lines.append(f"snapshot {node.log.snap_index}/{node.log.snap_term}")
        lines.extend(describe(e) for e in node.log.entries)
        return lines


def describe(e: Entry) -> str:
    """``index/term what`` for one entry, as the golden scripts print it."""
    if e.kind == EntryKind.CONF:
        cc = decode_conf_change(e.data)
        if cc.op == ConfOp.BOOTSTRAP:
            what = "conf bootstrap " + " ".join(str(v) for v in cc.voters)
        else:
            what = f"conf {cc.op.value} {cc.node}"
    elif e.data:
        what = e.data.decode("utf-8", "backslashreplace")
    else:
        what = "(empty)"
    return f"{e.index}/{e.term} {what}"
