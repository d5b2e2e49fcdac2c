from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.failure import FailureDetector, PeerAlive, PeerDead, PeerState, PeerSuspect
from agent.errors import ConfigError


def make() -> FailureDetector:
    return FailureDetector(suspect_after=0.6, dead_after=1.0)


def test_first_heartbeat_makes_a_peer_alive() -> None:
    fd = make()
    assert fd.observe("n2", 7, 1, now=0.0) == [PeerAlive("n2", 7, rebooted=False)]
    assert fd.state("n2") is PeerState.ALIVE
    assert fd.state("n3") is None


def test_silence_goes_suspect_then_dead_once() -> None:
    fd = make()
    fd.observe("n2", 7, 1, now=0.0)
    assert fd.tick(0.59) == []
    assert fd.tick(0.6) == [PeerSuspect("n2", 0.6)]
    assert fd.tick(0.8) == []
    assert fd.tick(1.0) == [PeerDead("n2", 1.0)]
    assert fd.tick(5.0) == []
    assert fd.state("n2") is PeerState.DEAD


def test_long_gap_skips_suspect() -> None:
    fd = make()
    fd.observe("n2", 7, 1, now=0.0)
    assert fd.tick(3.0) == [PeerDead("n2", 3.0)]


def test_fresh_heartbeat_revives_same_incarnation() -> None:
    fd = make()
    fd.observe("n2", 7, 1, now=0.0)
    fd.tick(2.0)
    assert fd.observe("n2", 7, 2, now=2.1) == [PeerAlive("n2", 7, rebooted=False)]
    assert fd.tick(2.2) == []


def test_stale_and_duplicate_heartbeats_are_not_signs_of_life() -> None:
    fd = make()
    fd.observe("n2", 7, 5, now=0.0)
    assert fd.observe("n2", 7, 5, now=0.5) == []
    assert fd.observe("n2", 7, 3, now=0.5) == []
    assert fd.tick(0.7) == [PeerSuspect("n2", pytest.approx(0.7))]


def test_new_incarnation_is_a_reboot_and_old_one_cannot_come_back() -> None:
    fd = make()
    fd.observe("n2", 7, 100, now=0.0)
    fd.tick(2.0)
    assert fd.observe("n2", 8, 1, now=2.5) == [PeerAlive("n2", 8, rebooted=True)]
    # A delayed packet from the previous life, with a higher seq, is ignored.
    assert fd.observe("n2", 7, 101, now=2.6) == []
    assert fd.views(2.6)[0].incarnation == 8


def test_bad_grace_is_refused() -> None:
    with pytest.raises(ConfigError):
        FailureDetector(suspect_after=1.0, dead_after=1.0)


@given(
    interval=st.floats(0.05, 1.0),
    beats=st.integers(1, 50),
    tick_fraction=st.floats(0.1, 1.0),
)
def test_dead_within_grace_plus_one_tick_after_last_heartbeat(
    interval: float, beats: int, tick_fraction: float
) -> None:
    """Ticking every ``tick`` s, death comes within dead_after + tick of the last beat."""
    suspect_after, dead_after = 3 * interval, 5 * interval
    fd = FailureDetector(suspect_after, dead_after)
    tick = interval * tick_fraction
    now, next_beat, seq, dead_at = 0.0, 0.0, 0, None
    last_beat = 0.0
    while seq < beats or now - last_beat <= 2 * dead_after + tick:
        if now >= next_beat and seq < beats:
            seq += 1
            fd.observe("n2", 1, seq, now)
            last_beat, next_beat = now, now + interval
        for ev in fd.tick(now):
            if isinstance(ev, PeerDead):
                assert seq == beats, "declared dead while still heartbeating"
                dead_at = now
        now += tick
    assert dead_at is not None
    assert dead_after <= dead_at - last_beat <= dead_after + tick + 1e-9
