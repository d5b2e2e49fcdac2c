from __future__ import annotations

import asyncio
import time

import pytest

from agent.sim.loop import Deadlock, VirtualTimeLoop


def test_virtual_time_jumps_instead_of_sleeping() -> None:
    loop = VirtualTimeLoop()
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await asyncio.sleep(seconds)
        woke.append(loop.time())

    async def main() -> None:
        await asyncio.gather(sleeper(3600.0), sleeper(0.25), sleeper(60.0))

    began = time.monotonic()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert woke == [0.25, 60.0, 3600.0]
    assert time.monotonic() - began < 30  # an hour of virtual time, never slept


def test_timeouts_fire_on_virtual_time() -> None:
    loop = VirtualTimeLoop()

    async def main() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.Event().wait()
        return loop.time()

    try:
        assert loop.run_until_complete(main()) == 5.0
    finally:
        loop.close()


def test_a_world_with_nothing_scheduled_is_a_deadlock() -> None:
    loop = VirtualTimeLoop()
    try:
        with pytest.raises(Deadlock):
            loop.run_until_complete(asyncio.Event().wait())
    finally:
        loop.close()


def test_after_step_runs_after_every_batch() -> None:
    loop = VirtualTimeLoop()
    steps: list[float] = []
    loop.after_step = lambda: steps.append(loop.time())

    async def main() -> None:
        for _ in range(3):
            await asyncio.sleep(1.0)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert {1.0, 2.0, 3.0} <= set(steps)
