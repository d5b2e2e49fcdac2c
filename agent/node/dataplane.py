"""The data plane's server socket: a second CURVE ROUTER, on the data port.

Shard bytes get their own socket so a large transfer never queues ahead of Raft,
heartbeats or status on the RPC socket. It lives on the transport's ZeroMQ context, so
the same ZAP handler admits only enrolled keys; every request arrives with the key that
sent it, and its payload frames as zero-copy views.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

import zmq
import zmq.asyncio

from agent.keys import Keypair
from agent.node.links import send_nowait
from agent.node.security import make_curve_server
from agent.wire.frames import BytesLike

DATA_HWM = 4096
"""Messages queued per peer before ZeroMQ pushes back."""

OnData = Callable[[bytes, str, list[memoryview]], None]
"""(route, sender's public key, frames) of one request."""


class DataServer(Protocol):
    def start(self, on_request: OnData) -> None: ...

    def reply(self, route: bytes, frames: Sequence[BytesLike]) -> None: ...

    def close(self) -> None: ...


class ZmqDataServer:
    def __init__(self, ctx: Callable[[], zmq.asyncio.Context], me: Keypair, endpoint: str) -> None:
        self._ctx = ctx
        self.me = me
        self.endpoint = endpoint
        self.sock: zmq.asyncio.Socket | None = None
        self._reader: asyncio.Task[None] | None = None

    def start(self, on_request: OnData) -> None:
        """Bind and serve; the transport (and its ZAP handler) must be started already."""
        sock = self._ctx().socket(zmq.ROUTER)
        make_curve_server(sock, self.me)
        sock.sndhwm = sock.rcvhwm = DATA_HWM
        sock.bind(self.endpoint)
        self.sock = sock
        self._reader = asyncio.get_running_loop().create_task(self._read(sock, on_request))

    @staticmethod
    async def _read(sock: zmq.asyncio.Socket, on_request: OnData) -> None:
        while True:
            frames = await sock.recv_multipart(copy=False)
            user = frames[1].get("User-Id") if len(frames) > 1 else ""
            on_request(frames[0].bytes, str(user), [f.buffer for f in frames[1:]])

    def reply(self, route: bytes, frames: Sequence[BytesLike]) -> None:
        if self.sock is not None:
            send_nowait(self.sock, [route, *frames], copy=False)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self.sock.close(linger=0)
