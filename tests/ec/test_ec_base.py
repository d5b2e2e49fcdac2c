"""Shared argument checks of :mod:`agent.ec.base`."""

from __future__ import annotations

import pytest

from agent.ec import InvalidParameters, ShardIndexError, UnequalShards
from agent.ec.base import check_indexes, check_params, check_shards


def test_check_params_limits() -> None:
    check_params(2, 1)
    check_params(2, 253)
    check_params(28, 4, max_n=32, max_m=4)
    for k, m, kw in [(2, 254, {}), (29, 4, {"max_n": 32}), (4, 5, {"max_m": 4})]:
        with pytest.raises(InvalidParameters):
            check_params(k, m, **kw)


def test_check_indexes_sorts_and_dedups() -> None:
    assert check_indexes([3, 1, 3, 0], 4) == [0, 1, 3]
    assert check_indexes([], 4) == []
    for bad in (4, -1, 1.0, "1", None, False):
        with pytest.raises(ShardIndexError):
            check_indexes([bad], 4)


def test_check_shards_returns_common_length() -> None:
    assert check_shards({}, 3) == 0
    assert check_shards({0: b"ab", 2: bytearray(b"cd"), 1: memoryview(b"ef")}, 3) == 2
    with pytest.raises(UnequalShards) as err:
        check_shards({0: b"ab", 1: b"abc"}, 3)
    assert err.value.lengths == [2, 3]
    with pytest.raises(ShardIndexError):
        check_shards({5: b"ab"}, 3)
