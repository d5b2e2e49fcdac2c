"""Chunking, quorums and versions of the object layout (pure)."""

from __future__ import annotations

import itertools

import pytest

from agent.objects.format import ObjectMeta, Version
from agent.objects.layout import (
    CHUNK_SIZE,
    chunk_lengths,
    newest,
    next_version,
    read_quorum,
    repair_quorum,
    write_quorum,
)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, []),
        (1, [1]),
        (CHUNK_SIZE - 1, [CHUNK_SIZE - 1]),
        (CHUNK_SIZE, [CHUNK_SIZE]),
        (CHUNK_SIZE + 1, [CHUNK_SIZE, 1]),
        (3 * CHUNK_SIZE + 7, [CHUNK_SIZE] * 3 + [7]),
    ],
)
def test_chunk_lengths_cover_the_object_exactly(size: int, expected: list[int]) -> None:
    assert chunk_lengths(size) == expected
    assert sum(chunk_lengths(size)) == size


@pytest.mark.parametrize(("k", "m"), list(itertools.product(range(2, 11), range(1, 6))))
def test_every_read_meets_every_acknowledged_write_and_every_repaired_read(k: int, m: int) -> None:
    n = k + m
    w, r, rr = write_quorum(k, m), read_quorum(k, m), repair_quorum(k, m)
    assert w == k + 1  # Ceph's min_size
    assert r + w > n  # a read hears at least one copy of every acknowledged version
    assert r + rr > n  # and of every version a read returned (read repair)
    if k > m:
        assert n - m >= r  # reads still work with m OSDs gone
        assert n - m >= rr  # and so does their repair
    elif k == m:
        assert n - m >= r  # reads hear enough with m gone, but cannot always repair
        assert n - m < rr  # (docs/objects.md: prefer k > m)


def test_next_version_is_after_everything_seen_even_with_a_clock_behind() -> None:
    seen = [Version(1_000, 5), Version(2_000, 1)]
    assert next_version(seen, now_ns=10_000, writer=3) == Version(10_000, 3)
    behind = next_version(seen, now_ns=500, writer=3)
    assert behind > max(seen)
    assert behind == Version(2_001, 3)
    assert next_version([], now_ns=7, writer=9) == Version(7, 9)


def test_versions_order_by_time_then_writer() -> None:
    assert Version(1, 9) < Version(2, 0)
    assert Version(2, 1) < Version(2, 2)
    assert sorted([Version(2, 2), Version(1, 5), Version(2, 1)]) == [
        Version(1, 5),
        Version(2, 1),
        Version(2, 2),
    ]


def test_the_newest_answer_wins_and_its_holders_are_known() -> None:
    old = ObjectMeta(pool=1, name="x", version=Version(5, 1))
    new = ObjectMeta(pool=1, name="x", version=Version(9, 2))
    best, holders = newest({0: old, 1: new, 2: None, 3: new})
    assert best == new
    assert holders == {1, 3}  # read repair writes it to 0 and 2
    assert newest({0: None, 1: None}) == (None, frozenset({0, 1}))
    assert newest({}) == (None, frozenset())
