"""The supervisor's world in the simulation: containers that are only records of when
they ran, a watchdog on the loop, and service addresses that need no plumbing.

Every start and stop is told to the checker at the true (virtual) instant it happens, so
the invariant "no container ever runs twice" is judged on true time, not on the drifting
clock of either node.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.node.clock import Clock
from agent.runtime.process import RunSpec

if TYPE_CHECKING:
    from agent.sim.ledger import RunLedger


class SimInstance:
    """A container that runs until killed, stopped, or (sometimes) it crashes by itself."""

    def __init__(self, runtime: SimRuntime, spec: RunSpec, pid: int) -> None:
        self.runtime = runtime
        self.spec = spec
        self.pid = pid
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def kill(self) -> None:
        self._end(-9)

    async def stop(self, grace: float = 2.0) -> int | None:
        self._end(0)
        return await self._exit

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def _end(self, code: int) -> None:
        if self._exit.done():
            return
        self._exit.set_result(code)
        self.runtime.checker.container_stopped(self.runtime.node, self.spec.name, self.pid)
        self.runtime.live.discard(self)


class SimRuntime:
    """Starts take a seeded while; one container in ``crash_odds`` crashes on its own."""

    def __init__(self, node: str, checker: RunLedger, rng: random.Random) -> None:
        self.node = node
        self.checker = checker
        self.rng = rng
        self.live: set[SimInstance] = set()
        self._pids = 100

    async def start(self, spec: RunSpec) -> SimInstance:
        await asyncio.sleep(self.rng.uniform(0.005, 0.05))
        self._pids += 1
        instance = SimInstance(self, spec, self._pids)
        self.live.add(instance)
        self.checker.container_started(self.node, spec.name, spec.generation, instance.pid)
        if self.rng.random() < 0.05:
            asyncio.get_running_loop().call_later(self.rng.uniform(0.1, 3.0), instance._end, 1)
        return instance

    def power_off(self) -> None:
        """The node lost its power: every container dies with it, now."""
        for instance in sorted(self.live, key=lambda i: i.pid):
            instance.kill()


class SimAddresses:
    async def add(self, address: str) -> None:
        return None

    async def remove(self, address: str) -> None:
        return None


class LoopWatchdog:
    """The watchdog on the virtual loop, on the node's own (drifting) clock."""

    def __init__(self, clock: Clock, rate: float, fire: Callable[[], None]) -> None:
        self.clock = clock
        self.rate = rate
        self.fire = fire
        self._handle: asyncio.TimerHandle | None = None

    def arm(self, deadline: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        delay = max(0.0, deadline - self.clock.monotonic()) / self.rate
        self._handle = asyncio.get_running_loop().call_later(delay, self._due)

    def _due(self) -> None:
        self._handle = None
        self.fire()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
