"""Quorum arithmetic, written once: Raft, the vote and the refusals all count with it."""

from __future__ import annotations


def majority(voters: int) -> int:
    """The smallest number of ``voters`` that is more than half of them (1 of 1, 2 of 3)."""
    if voters < 0:
        raise ValueError(f"a count of voters cannot be negative, got {voters}")
    return voters // 2 + 1


def is_majority(count: int, voters: int) -> bool:
    """Whether ``count`` of ``voters`` is a majority (never true of an empty electorate)."""
    return voters > 0 and count >= majority(voters)
