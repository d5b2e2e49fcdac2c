"""The simulated rack network: links that drop, delay, duplicate and reorder, and cuts.

Each node's :class:`SimTransport` plays the part of its ZeroMQ sockets: requests go to a
peer it admitted, replies go back on the route they came with, publications go to every
node whose subscription to us is up. A message is lost if its link is cut when it is
sent or when it arrives, or by the seeded chance of the current :class:`NetProfile`.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agent.node.transport import Inbound, Spawn
from agent.record import NodeRecord

Kind = Literal["request", "reply", "published"]
Link = tuple[str, str]


@dataclass(frozen=True, slots=True)
class NetProfile:
    """The network's misbehaviour: per-message loss and duplication, delays (seconds)."""

    drop: float = 0.0
    dup: float = 0.0
    delay_min: float = 0.0005
    delay_max: float = 0.005


CALM = NetProfile()
"""No loss and short delays: the network of the bound checks."""

Observer = Callable[[str, str, Kind, list[bytes]], None]


class SimNetwork:
    def __init__(self, loop: asyncio.AbstractEventLoop, rng: random.Random) -> None:
        self.loop = loop
        self.rng = rng
        self.profile = CALM
        self.blocked: set[Link] = set()
        self.endpoints: dict[str, SimTransport] = {}
        self.keys: dict[str, str] = {}
        """Public key of every node, as the ZAP handler would report it."""
        self.observers: list[Observer] = []
        """Told of every message a node actually receives (the checker's trace)."""
        self.stats = {"sent": 0, "delivered": 0, "lost": 0}

    def cut(self, src: str, dst: str) -> None:
        self.blocked.add((src, dst))

    def heal(self) -> None:
        self.blocked.clear()

    def carry(self, src: str, dst: str, kind: Kind, frames: list[bytes]) -> None:
        p, rng = self.profile, self.rng
        self.stats["sent"] += 1
        copies = 2 if p.dup and rng.random() < p.dup else 1
        for _ in range(copies):
            if (src, dst) in self.blocked or (p.drop and rng.random() < p.drop):
                self.stats["lost"] += 1
                continue
            delay = rng.uniform(p.delay_min, p.delay_max)
            self.loop.call_later(delay, self._arrive, src, dst, kind, frames)

    def _arrive(self, src: str, dst: str, kind: Kind, frames: list[bytes]) -> None:
        ep = self.endpoints.get(dst)
        if ep is None or (src, dst) in self.blocked or not ep.receives(src, kind):
            self.stats["lost"] += 1
            return
        self.stats["delivered"] += 1
        for observe in self.observers:
            observe(src, dst, kind, frames)
        ep.deliver(src, kind, frames)


class SimTransport:
    """One boot of one node on the simulated network (a dead node's transport is closed)."""

    def __init__(self, net: SimNetwork, me: NodeRecord) -> None:
        self.net = net
        self.me = me
        self.alive = False
        self.subscribed: dict[str, None] = {}
        """Peers whose publications reach us (an ordered set: iteration is deterministic)."""
        self._inbound: Inbound | None = None
        self.context = contextvars.copy_context()
        """The node's context: what it receives is handled as its own code."""

    def start(self, inbound: Inbound, spawn: Spawn) -> None:
        self._inbound = inbound
        self.alive = True
        self.net.endpoints[self.me.name] = self

    def connect(self, peer: NodeRecord) -> None:
        self.subscribed[peer.name] = None

    def send(self, peer: str, frames: list[bytes]) -> bool:
        if not self.alive or peer not in self.subscribed:
            return False
        self.net.carry(self.me.name, peer, "request", frames)
        return True

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        if self.alive:
            self.net.carry(self.me.name, route.decode(), "reply", frames)

    def publish(self, frames: list[bytes]) -> None:
        if not self.alive:
            return
        for name, ep in self.net.endpoints.items():
            if name != self.me.name and ep.alive and self.me.name in ep.subscribed:
                self.net.carry(self.me.name, name, "published", frames)

    def receives(self, src: str, kind: Kind) -> bool:
        return self.alive and (kind != "published" or src in self.subscribed)

    def deliver(self, src: str, kind: Kind, frames: list[bytes]) -> None:
        inbound = self._inbound
        if inbound is None:
            return
        if kind == "request":
            self.context.run(inbound.on_request, src.encode(), self.net.keys[src], frames)
        elif kind == "published":
            self.context.run(inbound.on_published, src, frames)
        else:
            self.context.run(inbound.on_reply, src, frames)

    def close(self) -> None:
        self.alive = False
        if self.net.endpoints.get(self.me.name) is self:
            del self.net.endpoints[self.me.name]
