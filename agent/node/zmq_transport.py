"""The real network: ZeroMQ with CURVE on every socket and the ZAP allowlist.

- ROUTER on ``bind:rpc_port``: requests, Raft traffic and health reports; ZAP stamps each
  with the key that sent it (``User-Id``);
- PUB on ``bind:pub_port``: heartbeats (topic ``hb.<node>``) and, on monitors, maps;
- per admitted peer, a SUB and a DEALER pinned to its key (:mod:`agent.node.links`).
"""

from __future__ import annotations

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from agent.enrolment import Allowlist
from agent.keys import Keypair
from agent.node.links import PeerSocket, send_nowait
from agent.node.security import make_curve_server, start_authenticator
from agent.node.transport import Inbound, Spawn
from agent.record import NodeRecord

PUB_HWM = 100
"""Heartbeats queued per subscriber before the oldest are dropped (they go stale anyway)."""


class ZmqTransport:
    def __init__(self, keypair: Keypair, allowlist: Allowlist, bind: str, rpc: int, pub: int):
        self.me = keypair
        self.allowlist = allowlist
        self.endpoints = (f"tcp://{bind}:{rpc}", f"tcp://{bind}:{pub}")
        self.ctx = zmq.asyncio.Context()
        self._auth: AsyncioAuthenticator | None = None
        self._links: dict[str, PeerSocket] = {}
        self._subs: dict[str, PeerSocket] = {}
        self.router: zmq.asyncio.Socket
        self.pub: zmq.asyncio.Socket

    def start(self, inbound: Inbound, spawn: Spawn) -> None:
        self._inbound, self._spawn = inbound, spawn
        self._auth = start_authenticator(self.ctx, lambda: self.allowlist)
        self.router = self.ctx.socket(zmq.ROUTER)
        make_curve_server(self.router, self.me)
        self.router.bind(self.endpoints[0])
        self.pub = self.ctx.socket(zmq.PUB)
        make_curve_server(self.pub, self.me)
        self.pub.sndhwm = PUB_HWM
        self.pub.bind(self.endpoints[1])
        spawn(self._read_requests())

    async def _read_requests(self) -> None:
        while True:
            frames = await self.router.recv_multipart(copy=False)
            user_id = frames[1].get("User-Id") if len(frames) > 1 else ""
            self._inbound.on_request(frames[0].bytes, str(user_id), [f.bytes for f in frames[1:]])

    def connect(self, peer: NodeRecord) -> None:
        for table, kind, deliver in (
            (self._links, zmq.DEALER, self._inbound.on_reply),
            (self._subs, zmq.SUB, self._inbound.on_published),
        ):
            old = table.pop(peer.name, None)
            if old is not None:
                old.close()
            table[peer.name] = PeerSocket(
                self.ctx, self.me, peer, kind, on_frames=deliver, spawn=self._spawn
            )

    def send(self, peer: str, frames: list[bytes]) -> bool:
        link = self._links.get(peer)
        return link is not None and link.send(frames)

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        send_nowait(self.router, [route, *frames])

    def publish(self, frames: list[bytes]) -> None:
        send_nowait(self.pub, frames)

    def close(self) -> None:
        for sock in [*self._links.values(), *self._subs.values()]:
            sock.close()
        self._links.clear()
        self._subs.clear()
        if self._auth is not None:
            self._auth.stop()
        self.ctx.destroy(linger=0)
