"""The monitor shell: drives the pure Raft core and applies the log to the cluster map.

For each :class:`~agent.raft.Ready` it persists (fsync) before it sends, then applies the
committed commands with :func:`agent.clustermap.apply`, as the Ready contract requires.
Raft messages travel as ``RaftPacket`` frames over the agents' CURVE links; the daemon
checks that the key which sent one belongs to the monitor it claims to come from.

The leader also does the monitors' chores: it proposes newly discovered nodes and disks
into the map, and turns the vote's tally into ``down``/``up``/``out`` changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from agent.clustermap import (
    AddNode,
    AddOsd,
    Applied,
    ClusterMap,
    Command,
    SetNodeStates,
    apply,
    decode_command,
    decode_map,
    encode_command,
    encode_map,
    membership_changes,
)
from agent.config import NodeConfig
from agent.errors import RackError
from agent.links import Links
from agent.raft import (
    DiskStorage,
    EntryKind,
    NotLeader,
    QuorumLost,
    RaftError,
    RaftNode,
    RaftRole,
    decode_message,
    encode_message,
    persist,
)
from agent.vote import VoteTally
from agent.wire import RaftPacket

log = logging.getLogger(__name__)

COMPACT_EVERY = 500
"""Entries applied past the last snapshot before the log is compacted."""
INFLIGHT_SECONDS = 2.0


class NoQuorum(RackError):
    """This monitor cannot get a write committed: no leader is reachable from here."""


class NotLeaderHere(RackError):
    """Writes go to the leader; ``leader`` names it when this monitor knows it."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(
            f"this monitor is not the leader; {leader} is"
            if leader
            else "this monitor is not the leader and knows of no leader"
        )
        self.leader = leader


def raft_id(name: str) -> int:
    """A stable, positive Raft id for a node name, the same on every node and every run."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") >> 1 or 1


class Monitor:
    def __init__(
        self,
        conf: NodeConfig,
        links: Links,
        on_map: Callable[[ClusterMap], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conf = conf
        self.links = links
        self.on_map = on_map
        self.clock = clock
        self.me = raft_id(conf.node)
        self.names = {raft_id(n): n for n in conf.monitors}
        self.storage = DiskStorage(Path(conf.data_dir) / "raft")
        state = self.storage.load()
        self.cmap = ClusterMap(cluster=conf.cluster)
        if state.snapshot is not None and state.snapshot.data:
            self.cmap = decode_map(state.snapshot.data)
        self.node = RaftNode(
            self.me,
            tuple(self.names),
            state,
            random.Random(),
            election_ticks=conf.timing.election_ticks,
            heartbeat_ticks=1,
        )
        self.tally = VoteTally(
            report_ttl=max(1.0, 2 * conf.timing.dead_after), out_after=conf.timing.out_after
        )
        self._waiting: dict[int, tuple[int, asyncio.Future[Applied]]] = {}
        self._inflight: dict[bytes, float] = {}
        self._applied_since_snapshot = 0
        self._process()  # re-apply what was committed before a restart
        log.info(
            "monitor %s starts at term %d, map epoch %d (%d monitors)",
            conf.node,
            self.node.term,
            self.cmap.epoch,
            len(self.names),
        )

    # ---- what others ask -----------------------------------------------------------------

    @property
    def role(self) -> RaftRole:
        return self.node.role

    @property
    def term(self) -> int:
        return self.node.term

    @property
    def leader(self) -> str | None:
        lead = self.node.lead
        return None if lead is None else self.names.get(lead)

    def is_monitor(self, name: str) -> bool:
        return raft_id(name) in self.names

    # ---- inputs --------------------------------------------------------------------------

    def tick(self) -> None:
        self.node.tick()
        self._process()

    def receive(self, sender: str, raw: bytes) -> None:
        """A Raft message from monitor ``sender`` (already authenticated by its key)."""
        try:
            msg = decode_message(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("dropped an undecodable raft message from %s: %s", sender, exc)
            return
        if msg.src != raft_id(sender) or msg.dst != self.me:
            log.warning(
                "dropped a raft message from %s that claims src %d, dst %d",
                sender,
                msg.src,
                msg.dst,
            )
            return
        self.node.step(msg)
        self._process()

    async def propose(self, cmd: Command, timeout: float) -> Applied:
        """Commit ``cmd`` through Raft and return how the map took it."""
        data = encode_command(cmd)
        index = self._propose_now(data)
        fut: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self._waiting[index] = (self.node.term, fut)
        self._process()
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise NoQuorum(f"the change was not committed within {timeout:g} s") from None
        finally:
            self._waiting.pop(index, None)

    def _propose_now(self, data: bytes) -> int:
        try:
            return self.node.propose(data)
        except NotLeader as exc:
            raise NotLeaderHere(
                None if exc.leader is None else self.names.get(exc.leader)
            ) from None
        except QuorumLost as exc:
            raise NoQuorum(
                f"monitor {self.conf.node} reaches only {exc.reachable} of {exc.total} monitors, "
                "fewer than a majority, so it refuses writes"
            ) from None

    # ---- the Ready loop ------------------------------------------------------------------

    def _process(self) -> None:
        before = self.cmap.epoch
        while self.node.has_ready():
            rd = self.node.ready()
            persist(self.storage, rd)  # durable before anything is sent
            for msg in rd.messages:
                name = self.names.get(msg.dst)
                if name is not None:
                    self.links.send(name, RaftPacket(), (encode_message(msg),))
            if rd.restore_snapshot and rd.snapshot is not None:
                self.cmap = (
                    decode_map(rd.snapshot.data)
                    if rd.snapshot.data
                    else ClusterMap(cluster=self.conf.cluster)
                )
                self._applied_since_snapshot = 0
            for entry in rd.committed_entries:
                if entry.kind == EntryKind.NORMAL and entry.data:
                    self._apply(entry.index, entry.term, entry.data)
                self._applied_since_snapshot += 1
            if rd.soft_state is not None:
                log.info(
                    "raft: %s, leader %s, term %d", rd.soft_state.role, self.leader, self.node.term
                )
            self.node.advance()
            if self._applied_since_snapshot >= COMPACT_EVERY:
                self.node.compact(self.node.log.applied, encode_map(self.cmap))
                self._applied_since_snapshot = 0
        if self.cmap.epoch != before:
            self.on_map(self.cmap)

    def _apply(self, index: int, term: int, data: bytes) -> None:
        self._inflight.pop(data, None)
        try:
            cmd = decode_command(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            result = Applied(self.cmap, f"the command at index {index} does not decode: {exc}")
        else:
            result = apply(self.cmap, cmd)
            self.cmap = result.cmap
        waiting = self._waiting.pop(index, None)
        if waiting is not None and not waiting[1].done():
            proposed_term, fut = waiting
            if proposed_term == term:
                fut.set_result(result)
            else:
                fut.set_exception(NoQuorum("leadership changed before the change committed; retry"))

    # ---- leader chores -------------------------------------------------------------------

    def report(self, reporter: str, dead: frozenset[str], alive: dict[str, int]) -> None:
        self.tally.report(reporter, dead, alive, self.clock())

    def chores(self, heard_nodes: list[AddNode], heard_osds: list[AddOsd]) -> None:
        """On the leader: propose missing nodes and disks, and what the vote decided."""
        if self.node.role != RaftRole.LEADER:
            return
        now = self.clock()
        self._inflight = {d: t for d, t in self._inflight.items() if t > now}
        for cmd in membership_changes(self.cmap, heard_nodes, heard_osds):
            self._fire(cmd, now)
        changes = self.tally.decide(self.cmap, now)
        if changes:
            self._fire(
                SetNodeStates(changes=tuple(changes), at=now), now, key=repr(changes).encode()
            )

    def _fire(self, cmd: Command, now: float, key: bytes | None = None) -> None:
        """Propose without waiting; the same change is not re-proposed while in flight."""
        data = encode_command(cmd)
        key = key or data
        if key in self._inflight:
            return
        try:
            self.node.propose(data)
        except RaftError:
            return
        self._inflight[key] = now + INFLIGHT_SECONDS
        if isinstance(cmd, SetNodeStates):
            for change in cmd.changes:
                log.warning("the vote marks %s %s", change.name, change.state)
        self._process()

    def close(self) -> None:
        for _, fut in self._waiting.values():
            if not fut.done():
                fut.cancel()
        self.storage.close()
