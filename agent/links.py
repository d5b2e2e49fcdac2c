"""Outgoing links from one agent to its peers: one DEALER per peer, pinned to its key.

Two uses: fire-and-forget messages (Raft traffic, which tolerates loss and must never
block the event loop on a dead peer) and awaited calls with a request id and deadline.
``ZMQ_IMMEDIATE`` keeps messages off connections that are not up, so sending to a dead
peer fails at once (and is dropped) instead of queueing stale traffic for its return.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass

import zmq
import zmq.asyncio

from agent.errors import RemoteError, RpcTimeout, WireError
from agent.keys import Keypair
from agent.security import make_curve_client
from agent.wire import ErrorReply, Message, decode, encode

log = logging.getLogger(__name__)


def send_nowait(sock: zmq.asyncio.Socket, frames: list[bytes]) -> bool:
    """Send without waiting; False when ZeroMQ would block (no peer, queue full).

    pyzmq's asyncio socket reports ``Again`` on the returned future rather than raising,
    so the future is inspected here (which also keeps asyncio from logging it as lost).
    """
    fut = asyncio.ensure_future(sock.send_multipart(frames, flags=zmq.DONTWAIT))
    if fut.done():
        return fut.exception() is None
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    return True


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    address: str
    rpc_port: int
    public_key: str


class _Link:
    def __init__(self, ctx: zmq.asyncio.Context, me: Keypair, target: Target) -> None:
        self.target = target
        self.sock = ctx.socket(zmq.DEALER)
        make_curve_client(self.sock, me, target.public_key)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.sndhwm = 1000
        self.sock.reconnect_ivl = 100
        self.sock.reconnect_ivl_max = 1000
        # ZMTP heartbeats drop a connection whose peer vanished (power pulled, link cut),
        # so IMMEDIATE stops queueing to it within a second instead of a TCP timeout
        self.sock.heartbeat_ivl = 200
        self.sock.heartbeat_timeout = 800
        self.sock.connect(f"tcp://{target.address}:{target.rpc_port}")
        self.reader: asyncio.Task[None] | None = None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        self.sock.close(linger=0)


class Links:
    """A DEALER per peer; ``send`` drops when the peer is unreachable, ``call`` waits."""

    def __init__(self, ctx: zmq.asyncio.Context, me: Keypair) -> None:
        self.ctx = ctx
        self.me = me
        self._links: dict[str, _Link] = {}
        self._waiting: dict[int, asyncio.Future[tuple[Message, tuple[bytes, ...]]]] = {}
        self._rids = itertools.count(1)

    def set_target(self, target: Target) -> None:
        link = self._links.get(target.name)
        if link is not None and link.target == target:
            return
        if link is not None:
            link.close()
        link = _Link(self.ctx, self.me, target)
        link.reader = asyncio.get_running_loop().create_task(self._read(link))
        self._links[target.name] = link

    def known(self, name: str) -> bool:
        return name in self._links

    def close(self) -> None:
        for link in self._links.values():
            link.close()
        self._links.clear()
        for fut in self._waiting.values():
            fut.cancel()

    def send(self, name: str, msg: Message, payload: tuple[bytes, ...] = ()) -> bool:
        """Queue ``msg`` for ``name`` without waiting; False if it was dropped."""
        link = self._links.get(name)
        if link is None:
            return False
        return send_nowait(link.sock, encode(msg, payload))

    def next_rid(self) -> int:
        return next(self._rids)

    async def call(
        self, name: str, msg: Message, rid: int, timeout: float, payload: tuple[bytes, ...] = ()
    ) -> tuple[Message, tuple[bytes, ...]]:
        """Send a request built with ``rid``; wait for the reply with the same rid."""
        fut: asyncio.Future[tuple[Message, tuple[bytes, ...]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting[rid] = fut
        try:
            if not self.send(name, msg, payload):
                raise RpcTimeout(f"{name} is not reachable")
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RpcTimeout(f"{name} did not answer within {timeout:g} s") from None
        finally:
            self._waiting.pop(rid, None)
        if isinstance(reply[0], ErrorReply):
            raise RemoteError(reply[0].code, reply[0].message, reply[0].retryable)
        return reply

    async def _read(self, link: _Link) -> None:
        while True:
            frames = await link.sock.recv_multipart()
            try:
                reply, payload = decode(frames)
            except WireError as exc:
                log.debug("dropped a malformed reply from %s: %s", link.target.name, exc)
                continue
            fut = self._waiting.get(getattr(reply, "rid", -1))
            if fut is not None and not fut.done():
                fut.set_result((reply, payload))
