"""What the node needs from a network: the seam between the real one and the simulated one.

The node hands frames to a :class:`Transport` and receives frames through an
:class:`Inbound`; it never touches a socket. :class:`~agent.node.zmq_transport.ZmqTransport`
is the real one (CURVE, ZAP, ROUTER, PUB, one SUB and one DEALER per peer); the
whole-node simulation plugs in a simulated one, so the same node code runs on both.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from agent.record import NodeRecord

Spawn = Callable[[Coroutine[Any, Any, None]], object]


class Inbound(Protocol):
    def on_request(self, route: bytes, sender_key: str, frames: list[bytes]) -> None:
        """A request on our RPC socket; ``sender_key`` is the key that sent it."""
        ...

    def on_published(self, peer: str, frames: list[bytes]) -> None:
        """A message on ``peer``'s PUB socket, heard on the subscription pinned to its key."""
        ...

    def on_reply(self, peer: str, frames: list[bytes]) -> None:
        """A reply on our link to ``peer``."""
        ...


class Transport(Protocol):
    def start(self, inbound: Inbound, spawn: Spawn) -> None:
        """Listen (bind) and start reading; readers run as tasks made with ``spawn``."""
        ...

    def connect(self, peer: NodeRecord) -> None:
        """Subscribe to ``peer`` and open a link to it, pinned to its key (or re-point)."""
        ...

    def send(self, peer: str, frames: list[bytes]) -> bool:
        """Queue frames for ``peer`` without waiting; False if they were dropped."""
        ...

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        """Answer the request that arrived with ``route``."""
        ...

    def publish(self, frames: list[bytes]) -> None:
        """Publish frames (the first is the topic) to every subscriber."""
        ...

    def close(self) -> None: ...
