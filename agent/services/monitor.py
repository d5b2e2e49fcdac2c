"""The monitor: a Raft member holding the cluster map, and, while it leads, the chores.

Raft runs through the one :class:`~agent.raft.driver.RaftDriver`: each Ready's writes go
to the ordered disk executor, and only when they are durable are its messages sent and
its entries applied to the :class:`~agent.clustermap.machine.MapMachine`. Raft messages
travel as ``RaftPacket`` between monitors; the node checked that the key that sent one
is a monitor's, and here its ``src`` must be that monitor's own id.

The leader's chores (what to propose) are decided by :class:`~agent.core.chores.Chores`
from what the node hears and what the vote tallies; this service only proposes them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import msgspec

from agent.clustermap import Applied, ClusterMap, Command, SetNodeStates, encode_command, encode_map
from agent.clustermap.machine import MapMachine
from agent.core.chores import Chores
from agent.core.heard import disk_health, heard
from agent.core.raftid import raft_id
from agent.core.senders import Allow
from agent.errors import Busy, LeadershipChanged, NoQuorum, RpcTimeout
from agent.node.clock import every
from agent.node.env import NodeEnv
from agent.node.service import Handler, Incoming, NodeContext, Service
from agent.raft import (
    AnyRaftMessage,
    DriverBusy,
    Entry,
    LeaderTransferring,
    NotLeader,
    QuorumLost,
    RaftDriver,
    RaftError,
    RaftRole,
    SoftState,
    decode_message,
    encode_message,
    needs_persist,
    persist,
)
from agent.services.mapcache import MapCache
from agent.services.membership import Membership
from agent.wire import MAP_TOPIC, HealthReport, MapUpdate, RaftPacket

COMPACT_EVERY = 500
"""Entries applied past the last snapshot before the log is compacted."""


class MonitorService(Service):
    name = "monitor"
    log = logging.getLogger("agent.monitor")

    def __init__(
        self, ctx: NodeContext, env: NodeEnv, membership: Membership, mapcache: MapCache
    ) -> None:
        self.ctx = ctx
        self.env = env
        self.timing = timing = ctx.conf.timing
        self.membership = membership
        self.mapcache = mapcache
        self.me = raft_id(ctx.me.name)
        self.names = {raft_id(n): n for n in ctx.conf.monitors}
        self.store = env.raft_store()
        state = self.store.load()
        self.machine = MapMachine(ctx.conf.cluster, self._applied)
        node = env.raft_factory(
            self.me,
            tuple(self.names),
            state,
            random.Random(ctx.rng.getrandbits(64)),
            timing.election_ticks,
            timing.raft_heartbeat_ticks,
        )
        self.driver = RaftDriver(
            node,
            self.store,
            self.machine,
            self._send,
            snapshot=state.snapshot,
            compact_every=COMPACT_EVERY,
            on_soft_state=self._soft_state,
        )
        self.tally = env.tally_factory(timing)
        self.chores = Chores()
        self._waiting: dict[int, tuple[int, asyncio.Future[Applied]]] = {}
        self._work = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._published_epoch = -1
        self._chores_due = False
        self.planners: list[Callable[[ClusterMap, float], list[Command]]] = []
        self._dead_reported: dict[str, frozenset[str]] = {}
        """More chores for the leader (the lease service's placements), asked each round."""
        mapcache.leader_source = self.leadership
        membership.contributors.append(self)
        self.log.info(
            "monitor %s starts at term %d, map epoch %d (%d monitors)",
            ctx.me.name,
            node.term,
            self.machine.cmap.epoch,
            len(self.names),
        )

    def handlers(self) -> Sequence[Handler]:
        return (
            Handler(RaftPacket, Allow.MONITORS, self._raft),
            Handler(HealthReport, Allow.SPEAKER, self._report, speaker=lambda m: m.reporter),
        )

    def loops(self) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
        return (self._pump, self._ticks, self._leader_chores)

    def heartbeat_fields(self) -> Mapping[str, object]:
        return {"raft_role": str(self.role), "raft_term": self.term}

    # ---- what others ask ---------------------------------------------------------------

    @property
    def role(self) -> RaftRole:
        return self.driver.node.role

    @property
    def term(self) -> int:
        return self.driver.node.term

    @property
    def leads(self) -> bool:
        return self.role == RaftRole.LEADER

    @property
    def cmap(self) -> ClusterMap:
        return self.machine.cmap

    def leadership(self) -> tuple[int, str | None]:
        lead = self.driver.node.lead
        return self.term, None if lead is None else self.names.get(lead)

    # ---- inputs ------------------------------------------------------------------------

    def _raft(self, inc: Incoming) -> None:
        if len(inc.payload) != 1:
            self.ctx.bad_input.warning("dropped a raft packet without one payload frame")
            return
        try:
            msg = decode_message(inc.payload[0])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.ctx.bad_input.warning("dropped an undecodable raft message: %s", exc)
            return
        if msg.src != raft_id(inc.sender.name) or msg.dst != self.me:
            self.ctx.bad_input.warning(
                "dropped a raft message from %s that claims src %d, dst %d",
                inc.sender.name,
                msg.src,
                msg.dst,
                key=inc.sender.name,
            )
            return
        self.driver.step(msg)
        self._work.set()

    def _report(self, inc: Incoming) -> None:
        r: HealthReport = inc.msg
        now = self.ctx.clock.monotonic()
        dead = frozenset(r.dead)
        self.tally.report(
            r.reporter, dead, dict(r.alive), now, incarnation=r.incarnation, seq=r.seq
        )
        if dead - self._dead_reported.get(r.reporter, frozenset()) and self.leads:
            self.chores_soon()  # a new "dead" may complete a majority: decide now
        self._dead_reported[r.reporter] = dead

    async def _ticks(self) -> None:
        def tick() -> None:
            self.driver.tick()
            self._work.set()

        await every(self.ctx.clock, self.timing.raft_tick, tick)

    # ---- the Ready loop ----------------------------------------------------------------

    async def _pump(self) -> None:
        """Persist each Ready off the loop, then let the driver send and apply it."""
        while True:
            await self._work.wait()
            self._work.clear()
            while (rd := self.driver.next_ready()) is not None:
                self._idle.clear()
                if needs_persist(rd):
                    await self.env.executor.run(functools.partial(persist, self.store, rd))
                self.driver.finish(rd)
                if self._chores_due:
                    self._chores_once()
            self._idle.set()
            self._publish_map()

    def _send(self, msg: AnyRaftMessage) -> None:
        name = self.names.get(msg.dst)
        if name is not None:
            self.ctx.send(name, RaftPacket(), (encode_message(msg),))

    def _soft_state(self, soft: SoftState) -> None:
        term, leader = self.leadership()
        self.log.info("raft: %s, leader %s, term %d", soft.role, leader, term)
        if soft.role == RaftRole.LEADER:
            # say so on the map topic now: nodes forward writes by what they last heard,
            # and a heartbeat could leave them with the dead leader for another interval
            self._published_epoch = -1

    def _applied(self, entry: Entry, cmd: Command | None, result: Applied) -> None:
        if cmd is not None:
            self.chores.settled(cmd)
        waiting = self._waiting.pop(entry.index, None)
        if waiting is None or waiting[1].done():
            return
        proposed_term, fut = waiting
        if proposed_term == entry.term:
            fut.set_result(result)
        else:
            fut.set_exception(
                LeadershipChanged(
                    "the leader changed before the change committed; it was not applied, retry"
                )
            )

    def _publish_map(self) -> None:
        cmap = self.machine.cmap
        if cmap.epoch == self._published_epoch:
            return
        self._published_epoch = cmap.epoch
        self.mapcache.offer(cmap, self.ctx.me.name, from_monitor=True)
        term, leader = self.leadership()
        update = MapUpdate(cluster=cmap.cluster, epoch=cmap.epoch, leader=leader, term=term)
        self.ctx.publish(MAP_TOPIC, update, (encode_map(cmap),))

    # ---- proposals ---------------------------------------------------------------------

    async def propose(self, cmd: Command, timeout: float) -> Applied:
        """Commit ``cmd`` through Raft and return how the map took it."""
        try:
            async with self.ctx.clock.timeout(timeout):
                while self.driver.busy:
                    await self._idle.wait()
                index = self._propose_now(encode_command(cmd))
                fut: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
                self._waiting[index] = (self.term, fut)
                self._work.set()
                try:
                    return await fut
                finally:
                    self._waiting.pop(index, None)
        except TimeoutError:
            raise RpcTimeout(f"the change was not committed within {timeout:g} s") from None

    def _propose_now(self, data: bytes) -> int:
        try:
            return self.driver.propose(data)
        except NotLeader as exc:
            leader = None if exc.leader is None else self.names.get(exc.leader)
            raise LeadershipChanged(
                f"monitor {self.ctx.me.name} no longer leads"
                + (f"; {leader} does" if leader else "")
            ) from None
        except QuorumLost as exc:
            raise NoQuorum(
                f"monitor {self.ctx.me.name} reaches only {exc.reachable} of {exc.total} "
                "monitors, fewer than a majority, so it refuses writes"
            ) from None
        except (LeaderTransferring, DriverBusy) as exc:
            raise Busy(str(exc)) from None

    # ---- the leader's chores -----------------------------------------------------------

    async def _leader_chores(self) -> None:
        await every(self.ctx.clock, self.timing.chores_interval, self._chores_once)

    def _chores_once(self) -> None:
        """Propose what is due; while a Ready is being persisted, right after it instead."""
        self._chores_due = self.driver.busy
        if not self.leads or self._chores_due:
            return
        clock = self.ctx.clock
        now = clock.monotonic()
        own = self.membership.published or self.membership.describe_self()
        beats = [own, *self.membership.beats.values()]
        nodes, osds = heard(beats, self.ctx.allowlist)
        disks = disk_health(beats, self.ctx.allowlist)
        wall = clock.wall()
        decided = self.tally.decide(self.cmap, now, wall=wall)
        planned = [cmd for planner in self.planners for cmd in planner(self.cmap, now)]
        due = self.chores.due(
            self.cmap, nodes, osds, decided, now=now, wall=wall, disks=disks, planned=planned
        )
        for cmd in due:
            try:
                self.driver.propose(encode_command(cmd))
            except RaftError:
                self.chores.settled(cmd)
                continue
            if isinstance(cmd, SetNodeStates):
                for change in cmd.changes:
                    self.log.warning("the vote marks %s %s", change.name, change.state)
            self._work.set()

    def chores_soon(self) -> None:
        """Run the chores at the next turn of the loop rather than at the next interval."""
        asyncio.get_running_loop().call_soon(self._chores_once)

    def close(self) -> None:
        for _, fut in self._waiting.values():
            if not fut.done():
                fut.cancel()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
