"""Deterministic simulation of a Raft cluster under faults, with safety checks after every step.

One ``random.Random(seed)`` drives everything: the network (drops, delays, reordering,
duplication), partitions (isolate, split, one-way, ring, isolate-the-leader), crashes
and restarts from persisted state only, clock skew, proposals, leader transfers,
membership changes and compactions. After every step the checker asserts:

* election safety - at most one leader per term;
* log matching - an (index, term) always names the same entry after the same
  predecessor term, so logs sharing an entry share the whole prefix;
* leader append-only - a leader never truncates its own log;
* leader completeness - every entry ever reported committed is in every new leader's log;
* state machine safety - every node applies the same entry at each index, contiguously,
  and every snapshot it restores matches the digest of what others applied.

At the end it heals everything, restarts every node and requires liveness: a leader
emerges and a final proposal is applied by every voter. Any violation raises
:class:`InvariantViolation` naming the seed and step; ``python -m agent.raft.sim --seed N``
replays it exactly (``--trace`` prints every event).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import struct
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from agent.raft.core import RaftNode
from agent.raft.driver import RaftDriver
from agent.raft.errors import RaftError
from agent.raft.memory import MemoryStorage
from agent.raft.messages import (
    AnyRaftMessage,
    ConfOp,
    Entry,
    EntryKind,
    InstallSnapshot,
    Snapshot,
    VoteResp,
    decode_conf_change,
)
from agent.raft.ready import LogStore, RaftRole, Ready, SoftState, persist

__all__ = ["InvariantViolation", "SimConfig", "SimResult", "Simulation", "main", "run_seed"]

NodeFactory = Callable[..., RaftNode]
StoreFactory = Callable[[int, LogStore | None], LogStore]

_IDX = struct.Struct("<QQ")


class InvariantViolation(AssertionError):
    """A safety or liveness property failed; the message names the seed and step."""

    def __init__(self, seed: int, step: int, tick: int, what: str) -> None:
        self.seed = seed
        self.step = step
        self.tick = tick
        self.what = what
        super().__init__(
            f"seed {seed}, step {step} (tick {tick}): {what} "
            f"- replay: python -m agent.raft.sim --seed {seed} --trace"
        )


@dataclass(frozen=True)
class SimConfig:
    """Shape of one run; the fault rates themselves are drawn per seed."""

    chaos_ticks: int = 200
    heal_ticks: int = 200
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    sizes: tuple[int, ...] = (3, 5)


@dataclass
class SimResult:
    seed: int
    nodes: int
    steps: int
    ticks: int
    stats: dict[str, int] = field(default_factory=dict)


def _memory_store(_: int, old: LogStore | None) -> LogStore:
    return old if old is not None else MemoryStorage()


class _App:
    """The replicated state machine (a :class:`~agent.raft.driver.StateMachine`): a CRC
    chain over every applied entry, CONF and empty ones included. As it goes it has the
    :class:`SafetyChecker` check that entries come contiguously and agree with what every
    other node applied, and that a restored snapshot matches the chain of the nodes that
    applied up to its index."""

    __slots__ = ("digest", "index", "node_id", "sim")

    def __init__(self, sim: Simulation, node_id: int) -> None:
        self.sim = sim
        self.node_id = node_id
        self.index = 0
        self.digest = 0

    def snapshot(self) -> bytes:
        return _IDX.pack(self.index, self.digest)

    def restore(self, snapshot: Snapshot) -> None:
        self.index, self.digest = _IDX.unpack(snapshot.data)
        self.sim.checker.check_restore(self.node_id, snapshot, self.index, self.digest)

    def apply(self, e: Entry) -> None:
        checker = self.sim.checker
        checker.check_apply(self.node_id, self.index, e)
        self.digest = zlib.crc32(e.data, zlib.crc32(_IDX.pack(e.index, e.term), self.digest))
        self.index = e.index
        checker.check_applied_state(self.node_id, e.index, self.digest)


class _SimNode:
    __slots__ = ("app", "bounce", "driver", "id", "led_term", "node", "peers", "store")

    def __init__(
        self, sim: Simulation, node_id: int, peers: tuple[int, ...], store: LogStore
    ) -> None:
        self.id = node_id
        self.peers = peers
        self.store = store
        #: ``driver`` and its ``node`` are ``None`` while the node is down.
        self.driver: RaftDriver | None = None
        self.node: RaftNode | None = None
        self.app = _App(sim, node_id)
        self.led_term = -1
        #: Set by the send hook when this node granted a vote it should reboot after.
        self.bounce = False


class Simulation:
    """One seeded run: the nodes, the network, each node's Readys through its driver, the
    run loop and the final liveness check. Faults come from :class:`Faults`, the safety
    checks from :class:`SafetyChecker`. ``node_factory`` lets tests inject a deliberately
    broken core."""

    def __init__(
        self,
        seed: int,
        config: SimConfig | None = None,
        *,
        node_factory: NodeFactory = RaftNode,
        store_factory: StoreFactory = _memory_store,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.seed = seed
        self.cfg = config or SimConfig()
        self.rng = random.Random(seed)
        self._factory = node_factory
        self._store_factory = store_factory
        self._trace = trace
        rng = self.rng
        self.n = rng.choice(self.cfg.sizes)
        # Per-seed fault profile, so the seeds cover calm and hostile networks alike.
        self.drop = rng.choice((0.0, 0.02, 0.1, 0.25))
        self.dup = rng.choice((0.0, 0.02, 0.1))
        self.max_delay = rng.choice((1, 2, 3, 5))
        self.p_crash = rng.choice((0.0, 0.01, 0.03))
        self.p_partition = rng.choice((0.0, 0.02, 0.05))
        self.p_transfer = rng.choice((0.0, 0.02))
        self.p_conf = rng.choice((0.0, 0.02, 0.05, 0.12))
        self.p_compact = rng.choice((0.0, 0.03, 0.1))
        self.p_propose = rng.choice((0.2, 0.5))
        # Targeted faults: kill leaders, and reboot a node right after it grants a vote
        # (the moment a forgotten vote would turn into two leaders).
        self.p_kill_leader = rng.choice((0.0, 0.01, 0.03))
        self.p_bounce = rng.choice((0.0, 0.1, 0.5))
        # Crash in the middle of handling a Ready: after 0-4 of its writes, before sending.
        self.p_torn = rng.choice((0.0, 0.002, 0.01))
        self.step_no = 0
        self.tick_no = 0
        self.nodes: dict[int, _SimNode] = {}
        self.down: set[int] = set()
        self.blocked: set[tuple[int, int]] = set()
        self.inflight: dict[int, list[AnyRaftMessage]] = {}
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "delivered",
                "dropped",
                "elections",
                "committed",
                "proposals",
                "crashes",
                "partitions",
                "transfers",
                "conf_changes",
                "snapshots_sent",
                "compactions",
                "restores",
            ),
            0,
        )
        self.checker = SafetyChecker(self)
        self.faults = Faults(self)
        self.next_id = self.n + 1
        ids = tuple(range(1, self.n + 1))
        self.initial_voters = ids
        for i in ids:
            self.nodes[i] = _SimNode(self, i, ids, store_factory(i, None))
            self.start(i)

    # ------------------------------------------------------------------ running
    def run(self) -> SimResult:
        try:
            return self._run()
        except InvariantViolation:
            raise
        except Exception as exc:  # a crash inside the core is a finding too
            raise self.fail(f"unexpected {type(exc).__name__}: {exc}") from exc

    def _run(self) -> SimResult:
        for t in range(self.cfg.chaos_ticks):
            self.tick_no = t
            self.faults.inject()
            self._tick_all(skew=True)
            self._deliver(t)
            if self.rng.random() < self.p_propose:
                self.faults.propose_random()
        self._liveness()
        self.checker.final_checks()
        return SimResult(self.seed, self.n, self.step_no, self.tick_no, self.stats)

    def event(self, text: str) -> None:
        self.step_no += 1
        if self._trace is not None:
            self._trace(f"{self.step_no:6d} t={self.tick_no:4d} {text}")

    def note(self, text: str) -> None:
        """An outcome worth seeing in a trace; not a step of its own."""
        if self._trace is not None:
            self._trace(f"{'':6} {'':6} . {text}")

    def fail(self, what: str) -> InvariantViolation:
        return InvariantViolation(self.seed, self.step_no, self.tick_no, what)

    # ------------------------------------------------------------------ nodes
    def start(self, node_id: int) -> None:
        sn = self.nodes[node_id]
        sn.store = self._store_factory(node_id, sn.store)
        state = sn.store.load()
        node = self._factory(
            node_id,
            sn.peers,
            state,
            random.Random(self.rng.getrandbits(32)),
            self.cfg.election_ticks,
            self.cfg.heartbeat_ticks,
        )
        sn.app = _App(self, node_id)
        sn.led_term = -1
        sn.bounce = False
        sn.node = node
        # The driver restores the app from the snapshot on disk, checking it.
        sn.driver = RaftDriver(
            node,
            sn.store,
            sn.app,
            partial(self._send_from, sn),
            snapshot=state.snapshot,
            on_soft_state=None if self._trace is None else partial(self._soft_state, sn),
        )

    def restart(self, node_id: int) -> None:
        """Bring a crashed node back from its persisted state and process its first Ready."""
        self.down.discard(node_id)
        self.start(node_id)
        self.process(self.nodes[node_id])

    def add_node(self) -> int:
        """Create and start a new, empty node with no peers (a configuration adds it)."""
        new = self.next_id
        self.next_id += 1
        self.nodes[new] = _SimNode(self, new, (), self._store_factory(new, None))
        self.start(new)
        return new

    def crash(self, sn: _SimNode) -> None:
        self.stats["crashes"] += 1
        sn.node = None
        sn.driver = None
        self.down.add(sn.id)

    def live(self) -> list[_SimNode]:
        return [sn for sn in self.nodes.values() if sn.node is not None]

    def leaders(self) -> list[_SimNode]:
        return [sn for sn in self.live() if sn.node is not None and sn.node.role == RaftRole.LEADER]

    def _tick_all(self, skew: bool) -> None:
        for sn in self.live():
            if skew and self.rng.random() < 0.1:
                continue  # this node's clock runs slow this tick
            assert sn.driver is not None
            self.event(f"tick {sn.id}")
            sn.driver.tick()
            self.process(sn)

    def _deliver(self, t: int) -> None:
        msgs = self.inflight.pop(t, None)
        if not msgs:
            return
        self.rng.shuffle(msgs)
        for m in msgs:
            sn = self.nodes.get(m.dst)
            if sn is None or sn.driver is None or (m.src, m.dst) in self.blocked:
                self.stats["dropped"] += 1
                continue
            self.event(f"deliver {type(m).__name__} {m.src}->{m.dst} term={m.term}")
            self.stats["delivered"] += 1
            sn.driver.step(m)
            self.process(sn)

    def _send(self, m: AnyRaftMessage) -> None:
        rng = self.rng
        for copy in range(2):
            if copy and rng.random() >= self.dup:
                break
            if rng.random() < self.drop:
                self.stats["dropped"] += 1
                continue
            delay = 1 if rng.random() < 0.6 else rng.randint(1, self.max_delay)
            self.inflight.setdefault(self.tick_no + delay, []).append(m)

    # ------------------------------------------------------------------ the shell loop
    def process(self, sn: _SimNode) -> None:
        """Handle the node's Readys through its driver: check, persist (or crash part-way
        through the writes), then ``finish()`` sends, restores, applies and advances."""
        driver = sn.driver
        assert driver is not None
        node = driver.node
        checker = self.checker
        sn.bounce = False
        while (rd := driver.next_ready()) is not None:
            checker.check_ready(sn, node, rd)
            if self.p_torn and self.rng.random() < self.p_torn:
                done = self.rng.randint(0, 4)
                self.event(f"crash {sn.id} after {done} of 4 writes of a Ready")
                _persist_prefix(sn.store, rd, done)
                self.crash(sn)  # the Ready is never finished: nothing of it is sent
                return
            persist(sn.store, rd)
            if rd.snapshot is not None and rd.restore_snapshot:
                self.stats["restores"] += 1
            driver.finish(rd)  # sends through _send_from, applies through sn.app
            if (
                rd.snapshot is not None
                or rd.truncate_from is not None
                or any(e.kind == EntryKind.CONF for e in rd.entries)
            ):
                checker.check_config(sn, node)
        if node.role == RaftRole.LEADER and sn.led_term != node.term:
            sn.led_term = node.term
            checker.check_new_leader(sn, node)
        if sn.bounce:
            sn.bounce = False
            self.event(f"reboot {sn.id} after voting")
            self.crash(sn)
            self.restart(sn.id)

    def _send_from(self, sn: _SimNode, m: AnyRaftMessage) -> None:
        """The driver's send hook for ``sn``: count, maybe plan a reboot, then send."""
        if isinstance(m, InstallSnapshot):
            self.stats["snapshots_sent"] += 1
        elif isinstance(m, VoteResp) and m.granted and not m.pre:
            sn.bounce = sn.bounce or self.rng.random() < self.p_bounce
        self._send(m)

    def _soft_state(self, sn: _SimNode, soft: SoftState) -> None:
        assert sn.node is not None
        self.note(f"node {sn.id} is {soft.role} in term {sn.node.term}, leader {soft.leader}")

    # ------------------------------------------------------------------ the end
    def _liveness(self) -> None:
        """Heal everything, restart everyone; a leader must emerge and commit a proposal
        that every voter then applies."""
        self.event("heal all for the liveness check")
        self.blocked.clear()
        self.drop = self.dup = self.p_torn = self.p_bounce = 0.0
        self.max_delay = 1
        for i in sorted(self.down):
            self.restart(i)
        committed = self.checker.committed
        final = b"final-%d" % self.seed
        pending: tuple[int, int] | None = None
        start = self.tick_no + 1
        for t in range(start, start + self.cfg.heal_ticks):
            self.tick_no = t
            self._tick_all(skew=False)
            self._deliver(t)
            done = [i for i, f in committed.items() if f[2] == final]
            leaders = sorted(self.leaders(), key=lambda s: s.node.term if s.node else 0)
            if done and leaders:
                lead = leaders[-1].node
                assert lead is not None
                if all(self.nodes[v].app.index >= done[0] for v in lead.voters if v in self.nodes):
                    return
            if done or not leaders:
                continue
            lead = leaders[-1].node
            driver = leaders[-1].driver
            assert lead is not None and driver is not None
            if pending is not None and lead.log.term(pending[0]) == pending[1]:
                continue
            try:
                index = driver.propose(final)
                pending = (index, lead.term)
                self.event(f"propose final at {lead.id} index {index}")
            except RaftError:
                pass
            self.process(leaders[-1])
        raise self.fail(
            f"no liveness {self.cfg.heal_ticks} ticks after healing: "
            + "; ".join(sn.node.status() for sn in self.live() if sn.node is not None)
        )


class Faults:
    """Fault injection into one :class:`Simulation`: crashes, restarts, partitions, leader
    transfers, membership changes, compactions and random proposals. Every choice is drawn
    from the simulation's one ``rng``, so the order of the draws is part of each replay."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def inject(self) -> None:
        """This tick's faults, each with its probability from the seed's fault profile."""
        sim = self.sim
        rng = sim.rng
        live = sim.live()
        if live and rng.random() < sim.p_crash:
            victim = rng.choice(live)
            sim.event(f"crash {victim.id}")
            sim.crash(victim)
        leaders = sim.leaders()
        if leaders and rng.random() < sim.p_kill_leader:
            victim = rng.choice(leaders)
            sim.event(f"crash leader {victim.id}")
            sim.crash(victim)
        if sim.down and rng.random() < 0.06:
            back = rng.choice(sorted(sim.down))
            sim.event(f"restart {back}")
            sim.restart(back)
        if not sim.blocked and rng.random() < sim.p_partition:
            self._partition()
        elif sim.blocked and rng.random() < 0.06:
            sim.event("heal")
            sim.blocked.clear()
        if rng.random() < sim.p_transfer:
            self._transfer()
        if rng.random() < sim.p_conf:
            self._conf_change()
        if rng.random() < sim.p_compact:
            self._compact()

    def _partition(self) -> None:
        sim = self.sim
        rng = sim.rng
        blocked = sim.blocked
        ids = sorted(sim.nodes)
        kind = rng.choice(("isolate", "isolate-leader", "split", "one-way", "ring"))
        sim.stats["partitions"] += 1
        if kind == "isolate-leader" and sim.leaders():
            kind = "isolate"
            victim = rng.choice(sim.leaders()).id
        else:
            victim = rng.choice(ids)
        if kind == "isolate":
            others = [i for i in ids if i != victim]
            self._cut([victim], others)
        elif kind == "split":
            shuffled = ids[:]
            rng.shuffle(shuffled)
            k = rng.randint(1, len(ids) - 1)
            self._cut(shuffled[:k], shuffled[k:])
        elif kind == "one-way":
            # Some nodes can send but not receive: the classic asymmetric failure.
            for a in ids:
                for b in ids:
                    if a != b and rng.random() < 0.3:
                        blocked.add((a, b))
        else:
            ring = ids[:]
            rng.shuffle(ring)
            n = len(ring)
            for i, a in enumerate(ring):
                for j, b in enumerate(ring):
                    if a != b and (i - j) % n not in (1, n - 1):
                        blocked.add((a, b))
        sim.event(f"partition {kind} blocked={sorted(blocked)}")

    def _cut(self, a: Sequence[int], b: Sequence[int]) -> None:
        blocked = self.sim.blocked
        for x in a:
            for y in b:
                blocked.add((x, y))
                blocked.add((y, x))

    def _transfer(self) -> None:
        sim = self.sim
        leaders = sim.leaders()
        if not leaders:
            return
        sn = sim.rng.choice(leaders)
        assert sn.node is not None and sn.driver is not None
        others = [v for v in sn.node.voters if v != sn.id]
        if not others:
            return
        to = sim.rng.choice(others)
        sim.event(f"transfer {sn.id} -> {to}")
        try:
            sn.driver.transfer_leadership(to)
            sim.stats["transfers"] += 1
        except RaftError:
            pass
        sim.process(sn)

    def _conf_change(self) -> None:
        sim = self.sim
        leaders = sim.leaders()
        if not leaders:
            return
        sn = sim.rng.choice(leaders)
        driver = sn.driver
        assert driver is not None
        voters = driver.node.voters
        n = sim.n
        grow = len(voters) < n + 1 and (len(voters) <= n - 1 or sim.rng.random() < 0.5)
        if grow and len(sim.nodes) < n + 3:
            op, target = ConfOp.ADD, sim.add_node()
        elif len(voters) > max(1, n - 1):
            op, target = ConfOp.REMOVE, sim.rng.choice(voters)
        else:
            return
        sim.event(f"conf {op.value} {target} at {sn.id}")
        try:
            driver.propose_conf_change(op, target)
            sim.stats["conf_changes"] += 1
        except RaftError:
            pass
        sim.process(sn)

    def _compact(self) -> None:
        sim = self.sim
        live = sim.live()
        if not live:
            return
        sn = sim.rng.choice(live)
        driver = sn.driver
        assert driver is not None
        if sn.app.index - driver.node.log.snap_index < 2:
            return
        sim.event(f"compact {sn.id} at {sn.app.index}")
        driver.compact()  # at the applied index, with the app's snapshot bytes
        sim.stats["compactions"] += 1
        sim.process(sn)

    def propose_random(self) -> None:
        """Propose at a live node, usually a leader; a refusal is fine and is traced."""
        sim = self.sim
        live = sim.live()
        if not live:
            return
        leaders = sim.leaders()
        sn = sim.rng.choice(leaders if leaders and sim.rng.random() < 0.7 else live)
        assert sn.driver is not None
        data = b"p%d" % sim.step_no
        sim.event(f"propose {data!r} at {sn.id}")
        try:
            index = sn.driver.propose(data)
            sim.stats["proposals"] += 1
            sim.note(f"proposed at index {index}")
        except RaftError as exc:
            sim.note(f"refused: {type(exc).__name__}")
        sim.process(sn)


class SafetyChecker:
    """The safety properties of the module docstring, checked for one :class:`Simulation`
    after every step. It keeps the facts every node must agree on, whoever reported them
    first, and raises through :meth:`Simulation.fail` so a violation names seed and step."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.leader_of_term: dict[int, int] = {}
        self.entry_facts: dict[tuple[int, int], tuple[int, bytes, int]] = {}
        self.committed: dict[int, tuple[int, int, bytes]] = {}
        self.digest_at: dict[int, int] = {0: 0}

    def check_ready(self, sn: _SimNode, node: RaftNode, rd: Ready) -> None:
        fail = self.sim.fail
        if (
            rd.truncate_from is not None
            and node.role == RaftRole.LEADER
            and sn.led_term == node.term
        ):
            raise fail(f"leader {sn.id} truncated its log at {rd.truncate_from}")
        facts = self.entry_facts
        log = node.log
        for e in rd.entries:
            prev = log.term(e.index - 1)
            if prev is None:
                raise fail(f"node {sn.id} appended {e.index} with no entry before it")
            fact = (e.kind, e.data, prev)
            seen = facts.setdefault((e.index, e.term), fact)
            if seen != fact:
                raise fail(
                    f"log matching: node {sn.id} holds entry {e.index}/{e.term} "
                    f"{fact!r}, another node {seen!r}"
                )

    def check_config(self, sn: _SimNode, node: RaftNode) -> None:
        """Configurations take effect when appended: a node's voters are those of the last
        configuration entry in its persisted log (else its snapshot's, else its initial
        peers), and each configuration entry changes exactly one voter."""
        fail = self.sim.fail
        state = sn.store.load()
        snap = state.snapshot
        voters = snap.voters if snap else tuple(sorted(sn.peers))
        prev: tuple[int, ...] | None = snap.voters if snap else None
        for e in state.entries:
            if e.kind != EntryKind.CONF:
                continue
            cc = decode_conf_change(e.data)
            if cc.op == ConfOp.BOOTSTRAP:
                if e.index != 1 or cc.voters != self.sim.initial_voters:
                    raise fail(f"bootstrap entry {e.index} with voters {cc.voters}")
            elif prev is None or len(set(prev) ^ set(cc.voters)) != 1:
                raise fail(f"entry {e.index} changes {prev} to {cc.voters}: not one server")
            voters = prev = cc.voters
        if tuple(voters) != node.voters:
            raise fail(f"node {sn.id} uses voters {node.voters}, its log says {voters}")

    def check_new_leader(self, sn: _SimNode, node: RaftNode) -> None:
        fail = self.sim.fail
        self.sim.stats["elections"] += 1
        other = self.leader_of_term.setdefault(node.term, sn.id)
        if other != sn.id:
            raise fail(f"two leaders in term {node.term}: {other} and {sn.id}")
        log = node.log
        for index, (term, _, _) in self.committed.items():
            if index > log.snap_index and log.term(index) != term:
                raise fail(
                    f"leader {sn.id} of term {node.term} lacks committed entry {index}/{term}"
                )
            if index <= log.snap_index and self.digest_at.get(log.snap_index) is None:
                raise fail(f"leader {sn.id} has a snapshot nobody applied")

    def check_apply(self, node_id: int, applied: int, e: Entry) -> None:
        """Before node ``node_id``, having applied up to ``applied``, applies ``e``."""
        sim = self.sim
        if e.index != applied + 1:
            raise sim.fail(f"node {node_id} applied {e.index} after {applied}")
        fact = (e.term, e.kind, e.data)
        seen = self.committed.get(e.index)
        if seen is None:
            self.committed[e.index] = fact
            sim.stats["committed"] += 1
        elif seen != fact:
            raise sim.fail(f"node {node_id} committed {e.index} as {fact!r}, others as {seen!r}")

    def check_applied_state(self, node_id: int, index: int, digest: int) -> None:
        """After node ``node_id`` applied up to ``index``, its state's digest is ``digest``."""
        known = self.digest_at.setdefault(index, digest)
        if known != digest:
            raise self.sim.fail(f"node {node_id} state after {index} differs from other nodes")

    def check_restore(self, node_id: int, snapshot: Snapshot, index: int, digest: int) -> None:
        """Node ``node_id`` restored ``snapshot``, holding the state at ``index``."""
        fail = self.sim.fail
        if index != snapshot.index:
            raise fail(f"node {node_id} snapshot {snapshot.index} holds state of {index}")
        if self.digest_at.get(snapshot.index) != digest:
            raise fail(f"node {node_id} restored a snapshot at {snapshot.index} nobody applied")

    def final_checks(self) -> None:
        """Every live node's persisted log is the core's log, its configuration agrees with
        it, and every pair of logs matches over the entries both still hold."""
        sim = self.sim
        live = [sn for sn in sim.live() if sn.node is not None]
        for sn in live:
            node = sn.node
            assert node is not None
            state = sn.store.load()
            snap_index = state.snapshot.index if state.snapshot else 0
            if snap_index != node.log.snap_index or list(state.entries) != node.log.entries:
                raise sim.fail(f"node {sn.id}: persisted log differs from the core's log")
            self.check_config(sn, node)
        for i, a in enumerate(live):
            for b in live[i + 1 :]:
                assert a.node is not None and b.node is not None
                self._check_matching(a.id, a.node, b.id, b.node)

    def _check_matching(self, ia: int, a: RaftNode, ib: int, b: RaftNode) -> None:
        """Full pairwise log-matching check over the entries both nodes still hold."""
        lo = max(a.log.first_index, b.log.first_index)
        hi = min(a.log.last_index, b.log.last_index)
        top = 0
        for idx in range(hi, lo - 1, -1):
            if a.log.term(idx) == b.log.term(idx):
                top = idx
                break
        for idx in range(lo, top + 1):
            ea = a.log.entries[idx - a.log.first_index]
            eb = b.log.entries[idx - b.log.first_index]
            if ea != eb:
                raise self.sim.fail(f"logs of {ia} and {ib} share {top} but differ at {idx}")


def _persist_prefix(store: LogStore, rd: Ready, count: int) -> None:
    """Only the first ``count`` writes of :func:`persist` reach the disk (a crash)."""
    writes: list[Callable[[], None]] = []
    if rd.snapshot is not None:
        snap = rd.snapshot
        writes.append(lambda: store.save_snapshot(snap))
    if rd.truncate_from is not None:
        index = rd.truncate_from
        writes.append(lambda: store.truncate_from(index))
    if rd.entries:
        writes.append(lambda: store.append(rd.entries))
    if rd.hard_state is not None:
        hs = rd.hard_state
        writes.append(lambda: store.save_hard_state(hs))
    for write in writes[:count]:
        write()


def run_seed(
    seed: int,
    config: SimConfig | None = None,
    *,
    node_factory: NodeFactory = RaftNode,
    trace: Callable[[str], None] | None = None,
) -> SimResult:
    """Run one seed; raises :class:`InvariantViolation` on the first broken property."""
    return Simulation(seed, config, node_factory=node_factory, trace=trace).run()


def _run_range(args: tuple[int, int]) -> tuple[int, list[str], dict[str, int]]:
    start, count = args
    failures: list[str] = []
    totals: dict[str, int] = {}
    for seed in range(start, start + count):
        try:
            res = run_seed(seed)
        except InvariantViolation as exc:
            failures.append(str(exc))
            continue
        for k, v in res.stats.items():
            totals[k] = totals.get(k, 0) + v
    return count, failures, totals


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.raft.sim", description=__doc__)
    p.add_argument("--seed", type=int, help="replay exactly this seed")
    p.add_argument("--trace", action="store_true", help="with --seed: print every event")
    p.add_argument("--runs", type=int, default=0, help="run this many seeds")
    p.add_argument("--start", type=int, default=0, help="first seed of --runs")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for --runs")
    a = p.parse_args(argv)
    if a.seed is not None:
        trace = print if a.trace else None
        try:
            res = run_seed(a.seed, trace=trace)
        except InvariantViolation as exc:
            print(json.dumps({"seed": a.seed, "ok": False, "error": str(exc)}))
            return 1
        out = {"seed": a.seed, "ok": True, "nodes": res.nodes, "steps": res.steps, **res.stats}
        print(json.dumps(out))
        return 0
    if a.runs <= 0:
        p.error("give --seed N or --runs N")
    began = time.perf_counter()
    chunk = 250
    work = [(s, min(chunk, a.start + a.runs - s)) for s in range(a.start, a.start + a.runs, chunk)]
    failures: list[str] = []
    totals: dict[str, int] = {}
    done = 0
    if a.jobs > 1:
        with multiprocessing.Pool(a.jobs) as pool:
            results = list(pool.imap_unordered(_run_range, work))
    else:
        results = [_run_range(w) for w in work]
    for count, fails, tot in results:
        done += count
        failures.extend(fails)
        for k, v in tot.items():
            totals[k] = totals.get(k, 0) + v
    secs = time.perf_counter() - began
    print(
        json.dumps(
            {
                "runs": done,
                "start": a.start,
                "failures": len(failures),
                "first_failures": failures[:10],
                "seconds": round(secs, 2),
                "runs_per_second": round(done / secs, 1) if secs else None,
                "jobs": a.jobs,
                "totals": totals,
            }
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
