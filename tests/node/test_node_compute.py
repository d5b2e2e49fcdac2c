"""The lease watchdog fires from its own thread, even while the event loop is blocked."""

from __future__ import annotations

import threading
import time

from agent.node.compute import ThreadWatchdog


def test_it_fires_once_at_the_deadline_and_again_only_when_rearmed() -> None:
    fired = threading.Event()
    count = []

    def fire() -> None:
        count.append(time.monotonic())
        fired.set()

    dog = ThreadWatchdog(fire)
    try:
        armed_at = time.monotonic()
        dog.arm(armed_at + 0.05)
        assert fired.wait(5.0)
        assert count[0] >= armed_at + 0.05
        time.sleep(0.1)
        assert len(count) == 1  # fired once; waits to be armed again
        fired.clear()
        dog.arm(time.monotonic() + 0.01)
        assert fired.wait(5.0) and len(count) == 2
    finally:
        dog.close()


def test_moving_the_deadline_later_postpones_it_and_a_blocked_caller_does_not_matter() -> None:
    fired = threading.Event()
    dog = ThreadWatchdog(fired.set)
    try:
        dog.arm(time.monotonic() + 0.05)
        dog.arm(time.monotonic() + 30.0)  # renewed: no kill now
        assert not fired.wait(0.2)
        dog.arm(time.monotonic() + 0.05)
        time.sleep(0.3)  # the caller is busy (a stalled event loop): the thread fires anyway
        assert fired.is_set()
    finally:
        dog.close()


def test_a_failing_kill_does_not_stop_the_watchdog() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    dog = ThreadWatchdog(broken)
    try:
        dog.arm(time.monotonic())
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        dog.arm(time.monotonic())
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) == 2
    finally:
        dog.close()
