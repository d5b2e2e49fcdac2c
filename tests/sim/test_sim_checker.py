"""The checker itself must be able to fail: each invariant is fed a breaking history."""

from __future__ import annotations

import pytest

from agent.clustermap import ClusterMap, NodeChange, SetNodeStates, encode_command
from agent.config import TimingConfig
from agent.raft import Entry, EntryKind, RaftRole
from agent.record import NodeRecord
from agent.sim.bounds import Assumptions
from agent.sim.checker import Checker, RecordingStore, Violation
from agent.wire import Heartbeat, encode, heartbeat_topic
from tests.core.core_helpers import mapped


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def checker(clock: Clock) -> Checker:
    return Checker(7, clock, TimingConfig(), Assumptions(delay_max=0.005, fsync_max=0.004), None)


def heartbeat_frames(src: str, seq: int, incarnation: int = 1) -> list[bytes]:
    hb = Heartbeat(
        cluster="c", node=NodeRecord(name=src, address="a"), incarnation=incarnation, seq=seq
    )
    return [heartbeat_topic(src), *encode(hb)]


def test_two_leaders_in_one_term_are_caught() -> None:
    c = checker(Clock())
    c.role("n1", RaftRole.LEADER, 3)
    c.role("n2", RaftRole.FOLLOWER, 3)
    c.role("n1", RaftRole.FOLLOWER, 4)
    with pytest.raises(Violation, match="two leaders in term 3: n1 and n2"):
        c.role("n2", RaftRole.LEADER, 3)


def test_election_attempts_are_counted() -> None:
    c = checker(Clock())
    for role, term in ((RaftRole.PRE_CANDIDATE, 1), (RaftRole.PRE_CANDIDATE, 1)):
        c.role("n1", role, term)  # the same role again is not a new attempt
    c.role("n1", RaftRole.CANDIDATE, 2)
    c.role("n1", RaftRole.PRE_CANDIDATE, 2)
    assert c.attempts == 2


def test_two_maps_of_one_epoch_are_caught() -> None:
    c = checker(Clock())
    c.cached_map("n1", ClusterMap(cluster="c", epoch=4))
    c.cached_map("n2", ClusterMap(cluster="c", epoch=4))
    with pytest.raises(Violation, match="n3 holds a map of epoch 4"):
        c.cached_map("n3", ClusterMap(cluster="other", epoch=4))


def test_a_changed_committed_entry_is_caught() -> None:
    c = checker(Clock())
    a, b = RecordingStore("n1", c), RecordingStore("n2", c)
    a.mem.append((Entry(1, 1, EntryKind.NORMAL, b"x"),))
    b.mem.append((Entry(1, 2, EntryKind.NORMAL, b"y"),))
    c.applied("n1", a, 0, 1)
    with pytest.raises(Violation, match="n2 committed entry 1 as term 2"):
        c.applied("n2", b, 0, 1)


def test_heard_throughout_needs_no_gap_as_long_as_dead_after() -> None:
    clock = Clock()
    c = checker(clock)
    for seq, t in enumerate([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6], start=1):
        clock.t = t
        c.delivered("n1", "n2", "published", heartbeat_frames("n1", seq))
    assert c.heard_throughout("n1", "n2", 0.5, 1.6)
    assert not c.heard_throughout("n1", "n2", 0.5, 2.7)  # silent from 1.6 on
    assert not c.heard_throughout("n1", "n3", 0.5, 1.6)  # n3 heard nothing


def test_duplicates_and_stale_heartbeats_are_no_sign_of_life() -> None:
    clock = Clock()
    c = checker(clock)
    c.delivered("n1", "n2", "published", heartbeat_frames("n1", 5))
    for t in (0.3, 0.6, 0.9, 1.2):  # replays of seq 5 and an older seq 4
        clock.t = t
        c.delivered("n1", "n2", "published", heartbeat_frames("n1", 5))
        c.delivered("n1", "n2", "published", heartbeat_frames("n1", 4))
    assert not c.heard_throughout("n1", "n2", 0.1, 1.2)


def test_a_proposal_to_evict_a_node_a_majority_hears_is_caught() -> None:
    clock = Clock()
    c = checker(clock)
    cmap = mapped(["n1", "n2", "n3", "n4", "n5"])
    c.maps = lambda _name: cmap
    for step in range(40):
        clock.t = step * 0.2
        for dst in ("n2", "n3", "n4"):
            c.delivered("n5", dst, "published", heartbeat_frames("n5", step + 1))
    down = SetNodeStates(changes=(NodeChange(name="n5", state="down"),), at=0.0)
    entry = Entry(30, 2, EntryKind.NORMAL, encode_command(down))
    with pytest.raises(Violation, match="proposed n5 down at index 30, but n2, n3, n4"):
        c.appended("n1", (entry,))
    # heard by only two: a vote may have been right, nothing to flag
    quiet = checker(clock)
    quiet.maps = lambda _name: cmap
    for step in range(40):
        clock.t = step * 0.2
        for dst in ("n2", "n3"):
            quiet.delivered("n5", dst, "published", heartbeat_frames("n5", step + 1))
    quiet.appended("n1", (entry,))


def test_commits_of_down_are_recorded_with_their_time() -> None:
    clock = Clock()
    c = checker(clock)
    store = RecordingStore("n1", c)
    down = SetNodeStates(changes=(NodeChange(name="n4", state="down"),), at=0.0)
    store.append((Entry(1, 1, EntryKind.NORMAL, encode_command(down)),))
    clock.t = 3.5
    c.applied("n1", store, 0, 1)
    c.applied("n2", store, 0, 1)  # another monitor applying it later changes nothing
    assert c.downs == [(3.5, "n4")]
