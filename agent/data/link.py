"""The client side of the data plane: one DEALER per OSD node, requests matched by id.

Each socket pins the node's enrolled key, so shard bytes are only ever exchanged with the
node the map names. Payload frames are sent and received without copies (zero-copy
ZeroMQ frames on the way out, memoryviews of the received frames on the way in).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Sequence

import zmq
import zmq.asyncio

from agent.errors import RpcTimeout, Unreachable, WireError
from agent.keys import Keypair
from agent.node.security import make_curve_client
from agent.record import NodeRecord
from agent.wire import DataMessage, ErrorReply, decode_data, encode_data, remote_error
from agent.wire.frames import BytesLike

log = logging.getLogger("agent.data")

DataReply = tuple[DataMessage, tuple[memoryview, ...]]
RECONNECT_MS = (100, 1000)
ZMTP_HEARTBEAT_MS = (500, 2000)
"""A connection to a node that vanished (power pulled) is dropped after 2 s of silence."""
SNDHWM = 4096
IO_THREADS = 2
"""ZeroMQ threads that encrypt and decrypt: a put's shards to different OSDs go in parallel."""


class _NodeSocket:
    def __init__(self, ctx: zmq.asyncio.Context, me: Keypair, node: NodeRecord) -> None:
        self.node = node
        self.sock = ctx.socket(zmq.DEALER)
        make_curve_client(self.sock, me, node.public_key)
        self.sock.reconnect_ivl, self.sock.reconnect_ivl_max = RECONNECT_MS
        self.sock.heartbeat_ivl, self.sock.heartbeat_timeout = ZMTP_HEARTBEAT_MS
        self.sock.sndhwm = SNDHWM
        self.sock.rcvhwm = SNDHWM
        self.sock.connect(node.data_endpoint)
        self.reader: asyncio.Task[None] | None = None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        with contextlib.suppress(zmq.ZMQError):
            self.sock.close(linger=0)


class DataLink:
    """Requests to OSD nodes' data ports; create and use it inside one event loop."""

    def __init__(self, me: Keypair) -> None:
        self.me = me
        self.ctx = zmq.asyncio.Context(io_threads=IO_THREADS)
        self._socks: dict[str, _NodeSocket] = {}
        self._waiting: dict[int, asyncio.Future[DataReply]] = {}
        self._rids = itertools.count(int.from_bytes(os.urandom(4), "big") + 1)

    def _socket(self, node: NodeRecord) -> _NodeSocket:
        if not node.data_port:
            raise Unreachable(f"node {node.name} serves no data port")
        current = self._socks.get(node.name)
        if current is not None and (current.node.data_endpoint, current.node.public_key) == (
            node.data_endpoint,
            node.public_key,
        ):
            return current
        if current is not None:
            current.close()
        sock = _NodeSocket(self.ctx, self.me, node)
        sock.reader = asyncio.get_running_loop().create_task(self._read(sock))
        self._socks[node.name] = sock
        return sock

    async def _read(self, ns: _NodeSocket) -> None:
        while True:
            frames = await ns.sock.recv_multipart(copy=False)
            try:
                msg, payload = decode_data([f.buffer for f in frames])
            except WireError as exc:
                log.warning("dropped a bad reply from %s: %s", ns.node.name, exc)
                continue
            rid = getattr(msg, "rid", None)
            fut = self._waiting.pop(rid, None) if isinstance(rid, int) else None
            if fut is not None and not fut.done():
                fut.set_result((msg, payload))

    async def request(
        self,
        node: NodeRecord,
        build: Callable[[int], DataMessage],
        payload: Sequence[BytesLike] = (),
        timeout: float = 10.0,
    ) -> DataReply:
        """One request to ``node``; raises RpcTimeout, Unreachable or RemoteError."""
        ns = self._socket(node)
        rid = next(self._rids)
        fut: asyncio.Future[DataReply] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            frames = encode_data(build(rid), payload)
            await ns.sock.send_multipart(frames, copy=False)
            async with asyncio.timeout(timeout):
                msg, data = await fut
        except TimeoutError:
            raise RpcTimeout(f"{node.name} did not answer within {timeout:g} s") from None
        except zmq.ZMQError as exc:
            raise Unreachable(f"cannot send to {node.name}: {exc}") from None
        finally:
            self._waiting.pop(rid, None)
        if isinstance(msg, ErrorReply):
            raise remote_error(msg)
        return msg, data

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
        for fut in self._waiting.values():
            fut.cancel()
        self.ctx.destroy(linger=0)
