"""Disk work off the event loop, in order: a single worker thread.

Raft's persist step fsyncs; run on the loop it would stall heartbeats and every request
for the length of an fsync. The monitor hands each Ready's writes to this executor and
sends only when they are done, so persist-before-send holds and the loop keeps going.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

T = TypeVar("T")


class Executor(Protocol):
    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` after every job submitted before it; return its result."""
        ...

    def close(self) -> None: ...


class OrderedExecutor:
    """One worker thread: jobs run one at a time, in the order they were submitted."""

    def __init__(self, name: str = "disk") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
