"""The node's clock: the one place the shell reads time.

Services never call ``time`` themselves; they ask the node's :class:`Clock` for
``monotonic()`` (durations, deadlines, the ``now`` every pure core takes) and ``wall()``
(timestamps for people and for the map's ``down_since``), and sleep through it. The
whole-node simulation gives each node a simulated clock that drifts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (only differences mean anything)."""
        ...

    def wall(self) -> float:
        """Unix seconds; for display and for timestamps recorded in the map."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock."""
        ...

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        """``async with clock.timeout(s):`` raises TimeoutError after ``s`` of this clock."""
        ...


class SystemClock:
    """The machine's clocks; asyncio's loop runs on the same monotonic clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(seconds)


async def every(clock: Clock, period: float, fn: Callable[[], None], *, first: float = 0.0) -> None:
    """Call ``fn`` every ``period`` seconds of ``clock`` (after ``first``), without drift
    from the time ``fn`` takes; a late wake-up does not bunch up the next calls."""
    await clock.sleep(first)
    next_at = clock.monotonic()
    while True:
        fn()
        next_at = max(next_at + period, clock.monotonic())
        await clock.sleep(next_at - clock.monotonic())
