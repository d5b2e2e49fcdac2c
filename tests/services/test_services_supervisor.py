"""The kill switch: what the lease's end kills, and that nothing starts after it."""

from __future__ import annotations

import threading

from agent.services.supervisor import KillSwitch


class Fake:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.killed = 0

    def kill(self) -> None:
        self.killed += 1

    async def stop(self, grace: float = 2.0) -> int | None:
        return 0

    async def wait(self) -> int:
        return 0


def test_nothing_runs_before_the_first_grant_and_a_trip_kills_everything_once() -> None:
    tripped: list[list[tuple[str, int]]] = []
    switch = KillSwitch(tripped.append)
    early = Fake(1)
    assert not switch.add("a", 1, early) and early.killed == 1  # no lease yet
    switch.reset()
    a, b = Fake(2), Fake(3)
    assert switch.add("a", 1, a) and switch.add("b", 4, b)
    switch.remove("b", b)
    switch.trip()
    switch.trip()  # a second trip finds nothing more to do
    assert (a.killed, b.killed) == (1, 0)
    assert tripped == [[("a", 1)]]
    late = Fake(4)
    assert not switch.add("c", 1, late) and late.killed == 1  # started as the lease ended


def test_remove_ignores_an_older_instance_of_the_same_name() -> None:
    switch = KillSwitch(lambda _k: None)
    switch.reset()
    old, new = Fake(1), Fake(2)
    switch.add("a", 1, old)
    switch.add("a", 2, new)
    switch.remove("a", old)
    switch.trip()
    assert new.killed == 1


def test_a_trip_from_another_thread_is_safe() -> None:
    switch = KillSwitch(lambda _k: None)
    switch.reset()
    instances = [Fake(i) for i in range(200)]
    for i, inst in enumerate(instances):
        switch.add(f"c{i}", 1, inst)
    t = threading.Thread(target=switch.trip)
    t.start()
    t.join()
    assert all(i.killed == 1 for i in instances)
