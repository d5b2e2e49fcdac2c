"""``rack-agent``: the node daemon, the thin asyncio shell around the pure parts.

It owns the sockets and the clock. Sockets, all CURVE with the ZAP allowlist:

- ROUTER on ``bind:rpc_port``: requests from peers and operators (``rack status``);
- PUB on ``bind:pub_port``: this node's heartbeats, topic ``hb.<node>``;
- one SUB connected to every admitted peer's PUB, pinned to the peer's enrolled key.

Decisions are made by pure state machines (:mod:`agent.failure` today, Raft and the
scheduler later) that get ``now`` from here.
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

import zmq
import zmq.asyncio

from agent import __version__
from agent.config import NodeConfig, load_node_config
from agent.discovery import Discovery, Peer
from agent.errors import RackError, WireError
from agent.failure import FailureDetector, PeerAlive, PeerDead, PeerState, PeerSuspect, Transition
from agent.keys import Allowlist, Keypair, load_allowlist, load_keypair
from agent.ratelimit import RateLimitedLog
from agent.security import make_curve_client, make_curve_server, start_authenticator
from agent.wire import (
    HEARTBEAT_PREFIX,
    ClusterStatus,
    DiskSummary,
    ErrorReply,
    Heartbeat,
    Message,
    NodeStatus,
    StatusReply,
    StatusRequest,
    decode,
    encode,
    heartbeat_topic,
)

log = logging.getLogger("agent")

_STATE_OF = {PeerState.ALIVE: "up", PeerState.SUSPECT: "suspect", PeerState.DEAD: "down"}


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
        self._stopping = asyncio.Event()
        self._bad_input = RateLimitedLog(log, per_seconds=10.0)
        self.ctx = zmq.asyncio.Context()
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
        self.sub.reconnect_ivl = 100
        self.sub.reconnect_ivl_max = 1000
        self.sub.rcvhwm = 1000

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
            "node %s of cluster %s up on %s (rpc %d, pub %d), incarnation %x",
            conf.node,
            conf.cluster,
            conf.bind,
            conf.rpc_port,
            conf.pub_port,
            self.incarnation,
        )
        tasks = [
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._sub_loop(), name="sub"),
            asyncio.create_task(self._rpc_loop(), name="rpc"),
            asyncio.create_task(self._detector_loop(), name="detector"),
        ]
        try:
            stop = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if discovery is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(discovery.stop(), timeout=2.0)
            auth.stop()
            self.ctx.destroy(linger=0)
            log.info("node %s stopped", conf.node)

    def stop(self) -> None:
        self._stopping.set()

    # ---- peers -------------------------------------------------------------------------

    def admit_peer(self, peer: Peer) -> None:
        """Connect our SUB to an admitted peer, or re-point it when its address changed."""
        old = self.peers.get(peer.name)
        if old == peer:
            return
        if old is not None:
            with contextlib.suppress(zmq.ZMQError):
                self.sub.disconnect(f"tcp://{old.address}:{old.pub_port}")
        make_curve_client(self.sub, self.me, peer.public_key)
        self.sub.connect(f"tcp://{peer.address}:{peer.pub_port}")
        self.peers[peer.name] = peer
        log.info("admitted peer %s at %s (pub %d)", peer.name, peer.address, peer.pub_port)

    # ---- loops -------------------------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        self.seq += 1
        conf = self.conf
        return Heartbeat(
            cluster=conf.cluster,
            node=conf.node,
            incarnation=self.incarnation,
            seq=self.seq,
            roles=conf.roles,
            address=conf.bind,
            rpc_port=conf.rpc_port,
            pub_port=conf.pub_port,
            uptime_s=round(time.monotonic() - self.started, 3),
            sent_at=time.time(),
            disks=disk_summaries(conf.disks),
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
                msg, _ = decode(frames[1:])
            except WireError as exc:
                self._bad_input.warning("dropped a malformed heartbeat: %s", exc)
                continue
            if not isinstance(msg, Heartbeat) or frames[0] != heartbeat_topic(msg.node):
                self._bad_input.warning(
                    "dropped a message that is not a heartbeat on %r", frames[0][:40]
                )
                continue
            if msg.cluster != self.conf.cluster or msg.node == self.conf.node:
                continue
            self._apply(self.detector.observe(msg.node, msg.incarnation, msg.seq, time.monotonic()))
            self.last_heartbeat[msg.node] = msg

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

    async def _rpc_loop(self) -> None:
        while True:
            frames = await self.router.recv_multipart()
            ident, body = frames[0], frames[1:]
            try:
                msg, _payload = decode(body)
            except WireError as exc:
                self._bad_input.warning("refused a malformed request: %s", exc)
                reply: Message = ErrorReply(rid=0, code="malformed", message=str(exc))
            else:
                reply = self.handle(msg)
            await self.router.send_multipart([ident, *encode(reply)])

    def handle(self, msg: Message) -> Message:
        """Answer one request; never raises on what a peer sent."""
        match msg:
            case StatusRequest(rid=rid):
                return StatusReply(rid=rid, status=self.status())
            case _:
                rid = getattr(msg, "rid", 0)
                self._bad_input.warning("refused an unexpected %s", type(msg).__name__)
                return ErrorReply(
                    rid=rid, code="unexpected", message=f"{type(msg).__name__} is not a request"
                )

    # ---- views -------------------------------------------------------------------------

    def status(self) -> ClusterStatus:
        now = time.monotonic()
        views = {v.node: v for v in self.detector.views(now)}
        nodes = [self._self_status()]
        for enrolled in self.allowlist.nodes():
            name = enrolled.name
            if name == self.conf.node:
                continue
            hb = self.last_heartbeat.get(name)
            view = views.get(name)
            peer = self.peers.get(name)
            nodes.append(
                NodeStatus(
                    name=name,
                    address=hb.address if hb else (peer.address if peer else None),
                    state=_STATE_OF[view.state] if view else "down",
                    roles=hb.roles if hb else (),
                    last_heartbeat_age_s=round(view.silent_for, 3) if view else None,
                    osds=hb.disks if hb else (),
                    rpc_port=hb.rpc_port if hb else (peer.rpc_port if peer else None),
                    pub_port=hb.pub_port if hb else (peer.pub_port if peer else None),
                    incarnation=hb.incarnation if hb else None,
                    uptime_s=hb.uptime_s if hb else None,
                )
            )
        nodes.sort(key=lambda n: n.name)
        return ClusterStatus(
            cluster=self.conf.cluster,
            epoch=0,
            quorum=None,
            nodes=tuple(nodes),
            answered_by=self.conf.node,
        )

    def _self_status(self) -> NodeStatus:
        conf = self.conf
        return NodeStatus(
            name=conf.node,
            address=conf.bind,
            state="up",
            roles=conf.roles,
            last_heartbeat_age_s=0.0,
            osds=disk_summaries(conf.disks),
            rpc_port=conf.rpc_port,
            pub_port=conf.pub_port,
            incarnation=self.incarnation,
            uptime_s=round(time.monotonic() - self.started, 3),
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
    except zmq.ZMQError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
