"""Per-peer sockets: one DEALER (requests, Raft, reports) and one SUB (heartbeats, maps)
for every admitted peer, each pinned to the peer's enrolled key.

Pinning the key is what lets the node attribute what it hears: whatever arrives on a
peer's sockets was sent by the holder of that peer's secret key. ``ZMQ_IMMEDIATE`` keeps
DEALER messages off connections that are not up, so sending to a dead peer fails at
once (and is dropped) instead of queueing stale traffic for its return; ZMTP heartbeats
notice a vanished peer (power pulled, link cut) within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import zmq
import zmq.asyncio

from agent.keys import Keypair
from agent.node.security import make_curve_client
from agent.node.transport import Spawn
from agent.record import NodeRecord
from agent.wire import HEARTBEAT_PREFIX, MAP_TOPIC
from agent.wire.frames import BytesLike

RECONNECT_MS = (100, 1000)
"""First and longest reconnect interval."""
ZMTP_HEARTBEAT_MS = (200, 800)
"""ZMTP ping interval and the silence after which a connection is dropped."""


def send_nowait(
    sock: zmq.asyncio.Socket, frames: Sequence[BytesLike], *, copy: bool = True
) -> bool:
    """Send without waiting; False when ZeroMQ would block (no peer, queue full).

    pyzmq's asyncio socket reports ``Again`` on the returned future rather than raising,
    so the future is inspected here (which also keeps asyncio from logging it as lost).
    ``copy=False`` hands bulk frames to ZeroMQ without copying them (the data plane).
    """
    fut = asyncio.ensure_future(sock.send_multipart(frames, flags=zmq.DONTWAIT, copy=copy))
    if fut.done():
        return fut.exception() is None
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    return True


class PeerSocket:
    """One client socket to one peer, pinned to its key, with a task reading from it."""

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        me: Keypair,
        peer: NodeRecord,
        kind: int,
        *,
        on_frames: Callable[[str, list[bytes]], None],
        spawn: Spawn,
    ) -> None:
        self.peer = peer
        self.sock = ctx.socket(kind)
        make_curve_client(self.sock, me, peer.public_key)
        self.sock.reconnect_ivl, self.sock.reconnect_ivl_max = RECONNECT_MS
        self.sock.heartbeat_ivl, self.sock.heartbeat_timeout = ZMTP_HEARTBEAT_MS
        if kind == zmq.SUB:
            self.sock.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_PREFIX)
            self.sock.setsockopt(zmq.SUBSCRIBE, MAP_TOPIC)
            self.sock.rcvhwm = 1000
            self.sock.connect(peer.pub_endpoint)
        else:
            self.sock.setsockopt(zmq.IMMEDIATE, 1)
            self.sock.sndhwm = 1000
            self.sock.connect(peer.rpc_endpoint)
        self._on_frames = on_frames
        self.reader = spawn(self._read())

    async def _read(self) -> None:
        while True:
            frames = await self.sock.recv_multipart()
            self._on_frames(self.peer.name, frames)

    def send(self, frames: list[bytes]) -> bool:
        return send_nowait(self.sock, frames)

    def close(self) -> None:
        if isinstance(self.reader, asyncio.Task):
            self.reader.cancel()
        with contextlib.suppress(zmq.ZMQError):
            self.sock.close(linger=0)
