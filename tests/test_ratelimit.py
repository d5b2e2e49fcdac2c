from __future__ import annotations

import logging

import pytest

from agent.ratelimit import RateLimitedLog


def test_says_once_per_period_and_counts_what_it_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    rl = RateLimitedLog(logging.getLogger("t"), per_seconds=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t"):
        assert rl.warning("bad frame from %s", "a")
        assert not rl.warning("bad frame from %s", "b")
        assert not rl.warning("bad frame from %s", "c")
        now[0] = 10.0
        assert rl.warning("bad frame from %s", "d")
    assert [r.getMessage() for r in caplog.records] == [
        "bad frame from a",
        "bad frame from d (and 2 more like it)",
    ]


def test_one_source_does_not_hide_another(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    rl = RateLimitedLog(logging.getLogger("t"), per_seconds=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t"):
        assert rl.warning("ignored %s", "a", key="a")
        assert not rl.warning("ignored %s", "a", key="a")
        assert rl.warning("ignored %s", "rogue", key="rogue")
    assert [r.getMessage() for r in caplog.records] == ["ignored a", "ignored rogue"]


def test_a_flood_of_names_falls_back_to_one_bucket() -> None:
    rl = RateLimitedLog(logging.getLogger("t"), per_seconds=10.0, clock=lambda: 0.0)
    logged = sum(rl.warning("ignored %s", i, key=str(i)) for i in range(10_000))
    assert logged <= 257  # MAX_KEYS distinct ones, then one shared bucket
