"""Waiting for enough of a fan-out: the quorum rule of every write and read.

A write waits for every OSD that is up, but a node whose power was just pulled is still
``up`` in the map for about a second; so once the quorum has answered, the others get a
short grace and are then recorded as missing (recovery completes them later).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agent.errors import Fenced, RackError, RemoteError

T = TypeVar("T")
K = TypeVar("K")

STRAGGLER_GRACE_S = 1.0
"""How long the rest of a fan-out may take once the quorum has answered."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[K, T]):
    ok: dict[K, T]
    failed: dict[K, RackError]
    """Keys that answered with an error, timed out, or were still out after the grace."""


async def gather_quorum(
    calls: Mapping[K, Awaitable[T]], need: int, grace: float = STRAGGLER_GRACE_S
) -> Outcome[K, T]:
    """Run ``calls`` at once; return when all are done, when ``need`` succeeded and the
    rest had ``grace`` seconds more, or when ``need`` can no longer be reached."""
    tasks = {asyncio.ensure_future(call): key for key, call in calls.items()}
    ok: dict[K, T] = {}
    failed: dict[K, RackError] = {}
    pending = set(tasks)
    deadline: float | None = None
    loop = asyncio.get_running_loop()
    try:
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            done, pending = await asyncio.wait(
                pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break
            for task in done:
                key = tasks[task]
                exc = task.exception()
                if exc is None:
                    ok[key] = task.result()
                elif isinstance(exc, RackError):
                    failed[key] = exc
                else:
                    raise exc
            if len(ok) + len(pending) < need:
                break
            if deadline is None and len(ok) >= need:
                deadline = loop.time() + grace
    finally:
        for task in pending:
            task.cancel()
            failed[tasks[task]] = RackError(
                "no answer in time" if len(ok) >= need else "given up: the quorum was out of reach"
            )
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
    return Outcome(ok, failed)


def raise_if_fenced(failed: Mapping[Any, RackError]) -> None:
    """A write that missed its quorum because OSDs refused its container's generation is
    :class:`~agent.errors.Fenced`, not merely short of shards: its writer must stop."""
    for exc in failed.values():
        if isinstance(exc, Fenced) or (isinstance(exc, RemoteError) and exc.code == "fenced"):
            raise Fenced(str(exc))
