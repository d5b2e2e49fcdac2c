"""Waiting for enough of a fan-out (real asyncio, short sleeps as the work)."""

from __future__ import annotations

import asyncio

import pytest

from agent.data.gather import gather_quorum
from agent.errors import RackError, RpcTimeout


async def answer(value: int, after: float) -> int:
    await asyncio.sleep(after)
    return value


async def fail(after: float) -> int:
    await asyncio.sleep(after)
    raise RpcTimeout("no answer")


def test_waits_for_everyone_when_all_answer_within_the_grace() -> None:
    calls = {i: answer(i, 0.01 * i) for i in range(5)}
    out = asyncio.run(gather_quorum(calls, need=3, grace=1.0))
    assert out.ok == {i: i for i in range(5)}
    assert out.failed == {}


def test_a_straggler_is_given_up_after_the_grace_once_the_quorum_answered() -> None:
    cancelled: list[bool] = []

    async def straggler() -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return 3

    calls = {0: answer(0, 0), 1: answer(1, 0), 2: answer(2, 0), 3: straggler()}
    out = asyncio.run(gather_quorum(calls, need=3, grace=0.05))
    assert set(out.ok) == {0, 1, 2}
    assert set(out.failed) == {3}
    assert str(out.failed[3]) == "no answer in time"
    assert cancelled == [True]  # it was given up, not waited for


def test_returns_as_soon_as_the_quorum_is_out_of_reach() -> None:
    calls = {0: fail(0), 1: fail(0), 2: answer(2, 30), 3: answer(3, 30)}
    out = asyncio.run(gather_quorum(calls, need=3, grace=1.0))
    assert out.ok == {}
    assert set(out.failed) == {0, 1, 2, 3}
    assert all(isinstance(e, RackError) for e in out.failed.values())


def test_a_bug_in_a_call_is_raised_not_counted_as_a_refusal() -> None:
    async def bug() -> int:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        asyncio.run(gather_quorum({0: bug(), 1: answer(1, 0)}, need=1))
