from __future__ import annotations

import pytest

from agent.config import TimingConfig
from agent.sim.bounds import Assumptions, down_bound

A = Assumptions(delay_max=0.005, fsync_max=0.004, drift=0.01)


def test_the_bound_is_the_documented_sum() -> None:
    b = down_bound(TimingConfig(), A)
    k = 1 / 0.99
    assert b.detect == pytest.approx(0.005 + 1.1 * k + 0.2 * k + 0.005)
    assert b.decide_and_commit == pytest.approx(0.1 * k + 0.004 + 3 * 0.004 + 2 * 0.005)
    assert b.seconds(0) == pytest.approx(b.detect + b.decide_and_commit)
    assert b.seconds(0) == pytest.approx(1.4501, abs=1e-4)  # docs/simulation.md quotes it


def test_each_election_attempt_widens_the_bound_once_detection_is_not_the_longer() -> None:
    b = down_bound(TimingConfig(), A)
    assert b.seconds(1) == pytest.approx(max(b.detect, b.election_round) + b.decide_and_commit)
    assert b.seconds(3) - b.seconds(2) == pytest.approx(b.election_round)


def test_slower_timing_or_more_drift_means_a_longer_bound() -> None:
    fast = down_bound(TimingConfig(), A).seconds(0)
    slow = down_bound(TimingConfig(dead_after=2.0, suspect_after=1.0), A).seconds(0)
    drifty = down_bound(TimingConfig(), Assumptions(0.005, 0.004, drift=0.05)).seconds(0)
    assert slow > fast + 0.9 and drifty > fast
