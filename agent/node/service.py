"""What a service is to the node: the messages it answers, who may send each, its loops.

A service never touches a socket. It gets a :class:`NodeContext` (send, call, publish,
spawn, the clock and the seeded random source) and declares a :class:`Handler` for each
message type it answers; the node's dispatch table looks handlers up by type and checks
the sender against the handler's :class:`~agent.core.senders.Allow` rule before calling it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from agent.config import NodeConfig
from agent.core.senders import Allow, Sender
from agent.enrolment import Allowlist
from agent.node.clock import Clock
from agent.ratelimit import RateLimitedLog
from agent.record import NodeRecord
from agent.wire import Message, Payload

Reply = tuple[Message, Payload]
Answer = Reply | None | Awaitable[Reply]
"""A handler answers now, not at all (fire-and-forget messages), or later (awaitable)."""


@dataclass(frozen=True, slots=True)
class Incoming:
    msg: Any
    payload: Payload
    sender: Sender
    """Who sent it, from the key of the connection it came on (never from its contents)."""


@dataclass(frozen=True, slots=True)
class Handler:
    kind: type[Message]
    allow: Allow
    answer: Callable[[Incoming], Answer]
    speaker: Callable[[Any], str] | None = None
    """For ``Allow.SPEAKER``: the node the message speaks for (e.g. a report's reporter)."""
    published: bool = False
    """Heard on a peer's subscription (heartbeats, maps), not sent to our RPC socket."""


class NodeContext(Protocol):
    """The node as its services see it."""

    conf: NodeConfig
    me: NodeRecord
    allowlist: Allowlist
    clock: Clock
    rng: random.Random
    bad_input: RateLimitedLog
    """Rate-limited warnings about what peers send."""

    @property
    def peers(self) -> Mapping[str, NodeRecord]:
        """Admitted peers (discovery)."""
        ...

    def send(self, peer: str, msg: Message, payload: Payload = ()) -> bool:
        """Fire and forget; to ourselves it is handled locally. False if dropped."""
        ...

    async def call(
        self, peer: str, build: Callable[[int], Message], timeout: float, payload: Payload = ()
    ) -> Reply:
        """A request built with a fresh request id; raises Unreachable, RpcTimeout or
        RemoteError (the peer's typed refusal)."""
        ...

    def publish(self, topic: bytes, msg: Message, payload: Payload = ()) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the node's task group; an exception in it is logged, not fatal."""
        ...


class Service:
    """Base of the node's services; subclasses override what they use."""

    name: ClassVar[str]
    log: ClassVar[logging.Logger]

    def handlers(self) -> Sequence[Handler]:
        return ()

    def loops(self) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
        """Long-running tasks, started with the node and cancelled when it stops."""
        return ()

    def heartbeat_fields(self) -> Mapping[str, object]:
        """Fields this service adds to the node's heartbeats."""
        return {}

    def close(self) -> None:
        """Release what the service holds (files); the node's loops are already stopped."""
