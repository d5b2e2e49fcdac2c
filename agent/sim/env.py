"""The simulated parts of a node's environment: a drifting clock, fsync latency, peers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from agent.enrolment import Allowlist
from agent.record import NodeRecord
from agent.wire import DiskSummary

T = TypeVar("T")

DISK_BYTES = 1 << 40
"""Every simulated disk is 1 TiB, half free."""


class SimClock:
    """A node's clock on virtual time: it runs ``1 + drift`` times as fast as true time.

    ``drift`` stays within the bound the design assumes (docs/simulation.md); each node
    keeps its clock across reboots of its agent, as a machine does.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, drift: float, offset: float) -> None:
        self.loop = loop
        self.rate = 1.0 + drift
        self.offset = offset

    def monotonic(self) -> float:
        return self.offset + self.loop.time() * self.rate

    def wall(self) -> float:
        return 1.7e9 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.rate)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(max(0.0, seconds) / self.rate)


class SimExecutor:
    """The disk thread: each job waits a seeded fsync latency, then runs, in order."""

    def __init__(self, rng: random.Random, fsync_min: float, fsync_max: float) -> None:
        self.rng = rng
        self.bounds = (fsync_min, fsync_max)
        self._lock = asyncio.Lock()

    async def run(self, fn: Callable[[], T]) -> T:
        async with self._lock:
            await asyncio.sleep(self.rng.uniform(*self.bounds))
            return fn()

    def close(self) -> None:
        return None


class SimPeers:
    """Discovery: soon after start, every other node of the rack is admitted."""

    def __init__(
        self,
        me: NodeRecord,
        records: Mapping[str, NodeRecord],
        on_peer: Callable[[NodeRecord], None],
        delay: float,
        allowlist: Allowlist,
    ) -> None:
        self.me = me
        self.allowlist = allowlist
        self.records = records
        self.on_peer = on_peer
        self.delay = delay
        self._handle: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.delay, self._admit_all)

    def _admit_all(self) -> None:
        for name, record in self.records.items():
            if name != self.me.name:
                self.on_peer(record)

    async def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def peers_factory(
    records: Mapping[str, NodeRecord], delay: float
) -> Callable[[NodeRecord, str, Allowlist, Callable[[NodeRecord], None]], SimPeers]:
    def make(
        me: NodeRecord, cluster: str, allowlist: Allowlist, on_peer: Callable[[NodeRecord], None]
    ) -> SimPeers:
        return SimPeers(me, records, on_peer, delay, allowlist)

    return make


def sim_disk(path: str) -> DiskSummary:
    return DiskSummary(path=path, total_bytes=DISK_BYTES, free_bytes=DISK_BYTES // 2)
