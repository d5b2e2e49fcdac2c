"""``rack-agent``: the node daemon, the thin asyncio shell around the pure parts.

It owns the sockets and the clock. Sockets, all CURVE with the ZAP allowlist:

- ROUTER on ``bind:rpc_port``: requests from peers and operators, Raft traffic and
  health reports (the ZAP user id tells which enrolled key sent each message);
- PUB on ``bind:pub_port``: heartbeats (topic ``hb.<node>``) and, on monitors, map
  updates (topic ``map``);
- one SUB connected to every admitted peer's PUB, pinned to the peer's enrolled key;
- one DEALER per admitted peer (:mod:`agent.links`) for Raft, reports and forwarding.

Decisions are made by pure state machines (:mod:`agent.failure`, the Raft core behind
:mod:`agent.monitor`, :mod:`agent.vote`) that get ``now`` from here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from agent import __version__
from agent.clustermap import AddNode, AddOsd, ClusterMap, decode_command, decode_map, encode_map
from agent.config import NodeConfig, load_node_config
from agent.discovery import Discovery, Peer
from agent.errors import RackError, RemoteError, RpcTimeout, WireError
from agent.failure import (
    FailureDetector,
    PeerAlive,
    PeerDead,
    PeerState,
    PeerSuspect,
    PeerView,
    Transition,
)
from agent.keys import Allowlist, Enrolled, Keypair, load_allowlist, load_keypair
from agent.links import Links, Target, send_nowait
from agent.monitor import Monitor, NoQuorum, NotLeaderHere
from agent.raft import RaftRole
from agent.ratelimit import RateLimitedLog
from agent.security import make_curve_client, make_curve_server, start_authenticator
from agent.wire import (
    HEARTBEAT_PREFIX,
    MAP_TOPIC,
    ClusterStatus,
    ContainerStatus,
    DiskSummary,
    ErrorReply,
    HealthReport,
    Heartbeat,
    MapReply,
    MapRequest,
    MapUpdate,
    Message,
    NodeStatus,
    ProposeReply,
    ProposeRequest,
    Quorum,
    RaftPacket,
    StatusReply,
    StatusRequest,
    decode,
    encode,
    heartbeat_topic,
)

log = logging.getLogger("agent")

_DETECTOR_STATE = {PeerState.ALIVE: "up", PeerState.SUSPECT: "suspect", PeerState.DEAD: "down"}
Reply = tuple[Message, tuple[bytes, ...]]
MAX_FORWARD_HOPS = 2


def disk_summaries(paths: tuple[str, ...]) -> tuple[DiskSummary, ...]:
    out = []
    for path in paths:
        try:
            usage = shutil.disk_usage(path)
            out.append(DiskSummary(path=path, total_bytes=usage.total, free_bytes=usage.free))
        except OSError:
            out.append(DiskSummary(path=path, total_bytes=0, free_bytes=0, ok=False))
    return tuple(out)


class Agent:
    """One node's daemon. ``run()`` until ``stop()``; every peer input is distrusted."""

    def __init__(self, conf: NodeConfig, keypair: Keypair, allowlist: Allowlist) -> None:
        self.conf = conf
        self.me = keypair
        self.allowlist = allowlist
        self.incarnation = secrets.randbits(63)
        self.started = time.monotonic()
        self.seq = 0
        self.detector = FailureDetector(conf.timing.suspect_after, conf.timing.dead_after)
        self.peers: dict[str, Peer] = {}
        self.last_heartbeat: dict[str, Heartbeat] = {}
        self.monitor: Monitor | None = None
        self._map: ClusterMap | None = None
        self._leader_hint: tuple[int, str] | None = None
        self._map_fetch_after = 0.0
        self._stopping = asyncio.Event()
        self._bad_input = RateLimitedLog(log, per_seconds=10.0)
        self._tasks: set[asyncio.Task[None]] = set()
        self.ctx = zmq.asyncio.Context()
        self.links = Links(self.ctx, keypair)
        self.router: zmq.asyncio.Socket
        self.pub: zmq.asyncio.Socket
        self.sub: zmq.asyncio.Socket

    # ---- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        conf = self.conf
        auth = start_authenticator(self.ctx, self.allowlist)
        self.router = self.ctx.socket(zmq.ROUTER)
        make_curve_server(self.router, self.me)
        self.router.bind(f"tcp://{conf.bind}:{conf.rpc_port}")
        self.pub = self.ctx.socket(zmq.PUB)
        make_curve_server(self.pub, self.me)
        self.pub.sndhwm = 100
        self.pub.bind(f"tcp://{conf.bind}:{conf.pub_port}")
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_PREFIX)
        self.sub.setsockopt(zmq.SUBSCRIBE, MAP_TOPIC)
        self.sub.reconnect_ivl = 100
        self.sub.reconnect_ivl_max = 1000
        self.sub.heartbeat_ivl = 200  # notice a vanished publisher, reconnect after a heal
        self.sub.heartbeat_timeout = 800
        self.sub.rcvhwm = 1000
        if "mon" in conf.roles:
            self.monitor = Monitor(conf, self.links, self._publish_map)

        discovery = None
        if conf.discovery.enabled:
            discovery = Discovery(
                bind=conf.bind,
                cluster=conf.cluster,
                node=conf.node,
                rpc_port=conf.rpc_port,
                pub_port=conf.pub_port,
                public_key=self.me.public,
                allowlist=self.allowlist,
                on_peer=self.admit_peer,
            )
            await discovery.start()
        log.info(
            "node %s of cluster %s up on %s (rpc %d, pub %d), incarnation %x, roles %s",
            conf.node,
            conf.cluster,
            conf.bind,
            conf.rpc_port,
            conf.pub_port,
            self.incarnation,
            ",".join(conf.roles),
        )
        loops: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
            ("heartbeat", self._heartbeat_loop),
            ("sub", self._sub_loop),
            ("rpc", self._rpc_loop),
            ("detector", self._detector_loop),
            ("report", self._report_loop),
        ]
        if self.monitor is not None:
            loops += [("raft", self._raft_loop), ("chores", self._chores_loop)]
        tasks = [asyncio.create_task(fn(), name=name) for name, fn in loops]
        try:
            stop = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in [*tasks, *self._tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            if discovery is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(discovery.stop(), timeout=2.0)
            if self.monitor is not None:
                self.monitor.close()
            self.links.close()
            auth.stop()
            self.ctx.destroy(linger=0)
            log.info("node %s stopped", conf.node)

    def stop(self) -> None:
        self._stopping.set()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- peers -------------------------------------------------------------------------

    def admit_peer(self, peer: Peer) -> None:
        """Connect our SUB and DEALER to an admitted peer, or re-point them on a move."""
        old = self.peers.get(peer.name)
        if old == peer:
            return
        if old is not None:
            with contextlib.suppress(zmq.ZMQError):
                self.sub.disconnect(f"tcp://{old.address}:{old.pub_port}")
        make_curve_client(self.sub, self.me, peer.public_key)
        self.sub.connect(f"tcp://{peer.address}:{peer.pub_port}")
        self.links.set_target(Target(peer.name, peer.address, peer.rpc_port, peer.public_key))
        self.peers[peer.name] = peer
        log.info(
            "admitted peer %s at %s (rpc %d, pub %d)",
            peer.name,
            peer.address,
            peer.rpc_port,
            peer.pub_port,
        )

    # ---- the map -----------------------------------------------------------------------

    @property
    def cmap(self) -> ClusterMap | None:
        return self.monitor.cmap if self.monitor is not None else self._map

    @property
    def epoch(self) -> int:
        cmap = self.cmap
        return 0 if cmap is None else cmap.epoch

    def leader(self) -> str | None:
        """The leader as this node knows it: its own Raft view, or the latest hint heard."""
        if self.monitor is not None:
            return self.monitor.leader
        return None if self._leader_hint is None else self._leader_hint[1]

    def _reachable_leader(self) -> str | None:
        """Where to forward a write: the leader if we hear it, else any monitor we hear."""
        alive = [
            m
            for m in self.conf.monitors
            if m != self.conf.node and self.detector.state(m) is PeerState.ALIVE
        ]
        leader = self.leader()
        if leader in alive:
            return leader
        return alive[0] if alive and self.monitor is None else None

    def _note_leader(self, term: int, name: str | None) -> None:
        if name is not None and (self._leader_hint is None or term >= self._leader_hint[0]):
            self._leader_hint = (term, name)

    def _publish_map(self, cmap: ClusterMap) -> None:
        update = MapUpdate(
            cluster=cmap.cluster,
            epoch=cmap.epoch,
            leader=self.leader(),
            term=self.monitor.term if self.monitor else 0,
        )
        send_nowait(self.pub, [MAP_TOPIC, *encode(update, (encode_map(cmap),))])

    def _take_map(self, data: bytes, source: str) -> None:
        """A map from a monitor: keep it if it is newer (monitors keep their own)."""
        if self.monitor is not None:
            return
        try:
            cmap = decode_map(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._bad_input.warning("dropped an undecodable map from %s: %s", source, exc)
            return
        if cmap.cluster == self.conf.cluster and cmap.epoch > self.epoch:
            self._map = cmap

    def _maybe_fetch_map(self, peer: str, their_epoch: int) -> None:
        """A peer is ahead of us: ask it for the map (at most once a second)."""
        now = time.monotonic()
        if self.monitor is not None or their_epoch <= self.epoch or now < self._map_fetch_after:
            return
        self._map_fetch_after = now + 1.0
        self._spawn(self._fetch_map(peer))

    async def _fetch_map(self, peer: str) -> None:
        rid = self.links.next_rid()
        with contextlib.suppress(RackError):
            reply, payload = await self.links.call(
                peer, MapRequest(rid=rid, have_epoch=self.epoch), rid, 2.0
            )
            if isinstance(reply, MapReply) and payload:
                self._take_map(payload[0], peer)

    # ---- loops -------------------------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        """The next heartbeat to publish (takes a new sequence number)."""
        self.seq += 1
        return self.describe_self()

    def describe_self(self) -> Heartbeat:
        """This node as its heartbeats describe it, at the current sequence number."""
        conf = self.conf
        mon = self.monitor
        return Heartbeat(
            cluster=conf.cluster,
            node=conf.node,
            incarnation=self.incarnation,
            seq=self.seq,
            epoch=self.epoch,
            roles=conf.roles,
            address=conf.bind,
            rpc_port=conf.rpc_port,
            pub_port=conf.pub_port,
            uptime_s=round(time.monotonic() - self.started, 3),
            sent_at=time.time(),
            disks=disk_summaries(conf.disks),
            raft_role=str(mon.role) if mon else None,
            raft_term=mon.term if mon else 0,
            leader=self.leader(),
            version=__version__,
        )

    async def _heartbeat_loop(self) -> None:
        interval = self.conf.timing.heartbeat_interval
        topic = heartbeat_topic(self.conf.node)
        next_at = time.monotonic()
        while True:
            await self.pub.send_multipart([topic, *encode(self.heartbeat())])
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _sub_loop(self) -> None:
        while True:
            frames = await self.sub.recv_multipart()
            try:
                msg, payload = decode(frames[1:])
            except WireError as exc:
                self._bad_input.warning("dropped a malformed published message: %s", exc)
                continue
            if isinstance(msg, MapUpdate) and frames[0] == MAP_TOPIC:
                if msg.cluster == self.conf.cluster:
                    self._note_leader(msg.term, msg.leader)
                    if payload:
                        self._take_map(payload[0], "a map update")
                continue
            if not isinstance(msg, Heartbeat) or frames[0] != heartbeat_topic(msg.node):
                self._bad_input.warning(
                    "dropped a published message of type %s", type(msg).__name__
                )
                continue
            if msg.cluster != self.conf.cluster or msg.node == self.conf.node:
                continue
            self._apply(self.detector.observe(msg.node, msg.incarnation, msg.seq, time.monotonic()))
            self.last_heartbeat[msg.node] = msg
            if msg.raft_role == str(RaftRole.LEADER):
                self._note_leader(msg.raft_term, msg.node)
            self._maybe_fetch_map(msg.node, msg.epoch)

    async def _detector_loop(self) -> None:
        period = self.conf.timing.heartbeat_interval / 2
        while True:
            await asyncio.sleep(period)
            self._apply(self.detector.tick(time.monotonic()))

    def _apply(self, events: list[Transition]) -> None:
        for ev in events:
            match ev:
                case PeerAlive(node, inc, rebooted):
                    log.info(
                        "peer %s is up%s (incarnation %x)",
                        node,
                        " after a restart" if rebooted else "",
                        inc,
                    )
                case PeerSuspect(node, silent):
                    log.warning("peer %s is suspect: silent for %.2f s", node, silent)
                case PeerDead(node, silent):
                    log.warning("peer %s is dead: silent for %.2f s", node, silent)

    def health(self) -> HealthReport:
        views = self.detector.views(time.monotonic())
        return HealthReport(
            reporter=self.conf.node,
            dead=tuple(v.node for v in views if v.state is PeerState.DEAD),
            alive={v.node: v.incarnation for v in views if v.state is PeerState.ALIVE},
        )

    async def _report_loop(self) -> None:
        """Tell every monitor what our detector sees; the leader tallies the vote."""
        while True:
            await asyncio.sleep(self.conf.timing.heartbeat_interval)
            report = self.health()
            for mon in self.conf.monitors:
                if mon == self.conf.node and self.monitor is not None:
                    self.monitor.report(report.reporter, frozenset(report.dead), dict(report.alive))
                else:
                    self.links.send(mon, report)

    async def _raft_loop(self) -> None:
        assert self.monitor is not None
        period = self.conf.timing.raft_tick
        next_at = time.monotonic()
        while True:
            self.monitor.tick()
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _chores_loop(self) -> None:
        assert self.monitor is not None
        while True:
            await asyncio.sleep(0.1)
            if self.monitor.role == RaftRole.LEADER:  # only the leader acts on what it hears
                self.monitor.chores(*self._heard())

    def _heard(self) -> tuple[list[AddNode], list[AddOsd]]:
        """Every node we hear (and ourselves), with its disks, as the map should list it."""
        nodes, osds = [], []
        beats = dict(self.last_heartbeat)
        beats[self.conf.node] = self.describe_self()
        for name, hb in beats.items():
            enrolled = self.allowlist.by_name(name)
            if enrolled is None or enrolled.kind != "node":
                continue
            nodes.append(
                AddNode(
                    name=name,
                    address=hb.address,
                    rpc_port=hb.rpc_port,
                    pub_port=hb.pub_port,
                    public_key=enrolled.public,
                    roles=hb.roles,
                    incarnation=hb.incarnation,
                )
            )
            osds += [
                AddOsd(node=name, path=d.path, weight=d.total_bytes)
                for d in hb.disks
                if d.ok and d.total_bytes > 0
            ]
        return nodes, osds

    # ---- RPC ---------------------------------------------------------------------------

    async def _rpc_loop(self) -> None:
        while True:
            frames = await self.router.recv_multipart(copy=False)
            ident = frames[0].bytes
            user_id = frames[1].get("User-Id") if len(frames) > 1 else ""
            sender = self.allowlist.by_public(str(user_id))
            body = [f.bytes for f in frames[1:]]
            try:
                msg, payload = decode(body)
            except WireError as exc:
                self._bad_input.warning("refused a malformed request: %s", exc)
                await self._reply(
                    ident, (ErrorReply(rid=0, code="malformed", message=str(exc)), ())
                )
                continue
            if sender is None:  # ZAP admitted it, so the allowlist changed under us
                continue
            if isinstance(msg, ProposeRequest):
                self._spawn(self._answer_later(ident, self._propose(msg, payload)))
                continue
            reply = self.handle(msg, payload, sender)
            if reply is not None:
                await self._reply(ident, reply)

    async def _reply(self, ident: bytes, reply: Reply) -> None:
        msg, payload = reply
        await self.router.send_multipart([ident, *encode(msg, payload)])

    async def _answer_later(self, ident: bytes, work: Awaitable[Reply]) -> None:
        await self._reply(ident, await work)

    def handle(self, msg: Message, payload: tuple[bytes, ...], sender: Enrolled) -> Reply | None:
        """Answer one request (None: no answer is due); never raises on what a peer sent."""
        match msg:
            case StatusRequest(rid=rid):
                return StatusReply(rid=rid, status=self.status()), ()
            case MapRequest(rid=rid, have_epoch=have):
                cmap = self.cmap
                if cmap is None or cmap.epoch <= have:
                    return MapReply(rid=rid, epoch=self.epoch), ()
                return MapReply(rid=rid, epoch=cmap.epoch), (encode_map(cmap),)
            case RaftPacket():
                if (
                    self.monitor is not None
                    and sender.kind == "node"
                    and self.monitor.is_monitor(sender.name)
                    and payload
                ):
                    self.monitor.receive(sender.name, payload[0])
                else:
                    self._bad_input.warning(
                        "dropped a raft packet from %s, which is not a monitor", sender.name
                    )
                return None
            case HealthReport(reporter=reporter, dead=dead, alive=alive):
                if self.monitor is not None and sender.kind == "node" and sender.name == reporter:
                    self.monitor.report(reporter, frozenset(dead), dict(alive))
                else:
                    self._bad_input.warning("dropped a health report from %s", sender.name)
                return None
            case _:
                rid = getattr(msg, "rid", 0)
                self._bad_input.warning("refused an unexpected %s", type(msg).__name__)
                return ErrorReply(
                    rid=rid, code="unexpected", message=f"{type(msg).__name__} is not a request"
                ), ()

    async def _propose(self, req: ProposeRequest, payload: tuple[bytes, ...]) -> Reply:
        """Commit a map change here if we lead, else forward it to the leader."""
        if len(payload) != 1:
            return ErrorReply(
                rid=req.rid, code="malformed", message="a proposal carries one command"
            ), ()
        try:
            cmd = decode_command(payload[0])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return ErrorReply(
                rid=req.rid, code="bad_command", message=f"the command does not decode: {exc}"
            ), ()
        timeout = max(0.1, min(req.deadline_ms / 1000, 30.0))
        try:
            if self.monitor is not None and self.monitor.role == RaftRole.LEADER:
                applied = await self.monitor.propose(cmd, timeout)
                return ProposeReply(
                    rid=req.rid, epoch=applied.cmap.epoch, refused=applied.refused
                ), ()
            leader = self._reachable_leader()
            if leader is None or req.hops >= MAX_FORWARD_HOPS:
                return self._no_quorum(req.rid), ()
            rid = self.links.next_rid()
            forward = ProposeRequest(rid=rid, deadline_ms=req.deadline_ms, hops=req.hops + 1)
            reply, _ = await self.links.call(leader, forward, rid, timeout, payload)
            if isinstance(reply, ProposeReply):
                return msgspec.structs.replace(reply, rid=req.rid), ()
            return ErrorReply(
                rid=req.rid, code="unexpected", message="the leader answered oddly"
            ), ()
        except (NoQuorum, NotLeaderHere) as exc:
            return ErrorReply(rid=req.rid, code="quorum_lost", message=str(exc), retryable=True), ()
        except RemoteError as exc:
            return ErrorReply(
                rid=req.rid, code=exc.code, message=str(exc), retryable=exc.retryable
            ), ()
        except RpcTimeout:
            return self._no_quorum(req.rid), ()
        except RackError as exc:  # e.g. a leader transfer in progress: try again shortly
            return ErrorReply(rid=req.rid, code="refused", message=str(exc), retryable=True), ()

    def _no_quorum(self, rid: int) -> ErrorReply:
        monitors = self.conf.monitors
        reach = sum(
            1 for m in monitors if m == self.conf.node or self.detector.state(m) is PeerState.ALIVE
        )
        return ErrorReply(
            rid=rid,
            code="quorum_lost",
            message=(
                f"node {self.conf.node} reaches {reach} of {len(monitors)} monitors and no leader; "
                f"writes need a majority of {len(monitors) // 2 + 1}"
            ),
            retryable=True,
        )

    # ---- views -------------------------------------------------------------------------

    def status(self) -> ClusterStatus:
        now = time.monotonic()
        views = {v.node: v for v in self.detector.views(now)}
        cmap = self.cmap
        # enrolled nodes the map does not list yet still show, from our own detector
        names = sorted({e.name for e in self.allowlist.nodes()} | set(cmap.nodes if cmap else ()))
        nodes = [self._node_status(name, views.get(name), cmap) for name in names]
        quorum = None
        if self.conf.monitors:
            term = (
                self.monitor.term
                if self.monitor
                else (self._leader_hint[0] if self._leader_hint else 0)
            )
            quorum = Quorum(leader=self.leader(), term=term, members=self.conf.monitors)
        pools = tuple(msgspec.to_builtins(p) for p in cmap.pools.values()) if cmap else ()
        containers = (
            tuple(
                ContainerStatus(
                    name=name,
                    node=c.node,
                    address=c.spec.address,
                    generation=c.generation,
                    state="assigned" if c.node else "pending",
                )
                for name, c in sorted(cmap.containers.items())
            )
            if cmap
            else ()
        )
        return ClusterStatus(
            cluster=self.conf.cluster,
            epoch=self.epoch,
            quorum=quorum,
            nodes=tuple(nodes),
            pools=pools,
            containers=containers,
            answered_by=self.conf.node,
        )

    def _node_status(self, name: str, view: PeerView | None, cmap: ClusterMap | None) -> NodeStatus:
        me = name == self.conf.node
        hb = self.describe_self() if me else self.last_heartbeat.get(name)
        peer = self.peers.get(name)
        detector_state = None if me or view is None else view.state
        info = cmap.nodes.get(name) if cmap else None
        state: str
        if info is not None:
            state = info.state
            if state == "up" and not me and detector_state is not PeerState.ALIVE:
                state = "suspect"  # the vote has not (yet) agreed, but we do not hear it
        elif me:
            state = "up"
        else:
            state = _DETECTOR_STATE[detector_state] if detector_state else "down"
        age = 0.0 if me else (round(view.silent_for, 3) if view is not None else None)
        return NodeStatus(
            name=name,
            address=hb.address
            if hb
            else (info.address if info else (peer.address if peer else None)),
            state=state,
            roles=hb.roles if hb else (info.roles if info else ()),
            last_heartbeat_age_s=age,
            osds=hb.disks if hb else (),
            rpc_port=hb.rpc_port if hb else (peer.rpc_port if peer else None),
            pub_port=hb.pub_port if hb else (peer.pub_port if peer else None),
            incarnation=hb.incarnation if hb else None,
            uptime_s=hb.uptime_s if hb else None,
            in_map=info is not None,
            osd_ids=tuple(sorted(o.id for o in cmap.osds.values() if o.node == name))
            if cmap
            else (),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rack-agent", description="Rackcloud node agent")
    parser.add_argument("--conf", required=True, help="node config (TOML)")
    args = parser.parse_args(argv)
    try:
        conf = load_node_config(args.conf)
        keypair = load_keypair(conf.keys.secret)
        allowlist = load_allowlist(conf.keys.allowlist)
        if allowlist.cluster != conf.cluster:
            raise RackError(
                f"the allowlist is for cluster {allowlist.cluster}, the config says {conf.cluster}"
            )
        enrolled = allowlist.by_name(conf.node)
        if enrolled is None or enrolled.public != keypair.public:
            raise RackError(f"node {conf.node} is not enrolled with this key in the allowlist")
        os.makedirs(conf.data_dir, exist_ok=True)
    except RackError as exc:
        print(f"rack-agent: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=conf.log_level.upper(),
        format=f"%(asctime)s {conf.node} %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(_serve(conf, keypair, allowlist))


async def _serve(conf: NodeConfig, keypair: Keypair, allowlist: Allowlist) -> int:
    agent = Agent(conf, keypair, allowlist)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop)
    try:
        await agent.run()
    except (zmq.ZMQError, RackError) as exc:
        log.error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
