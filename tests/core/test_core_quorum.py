from __future__ import annotations

import pytest

from agent.core.quorum import is_majority, majority


@pytest.mark.parametrize(("voters", "needed"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)])
def test_majority_is_more_than_half(voters: int, needed: int) -> None:
    assert majority(voters) == needed
    assert 2 * majority(voters) > voters >= 2 * (majority(voters) - 1)


def test_is_majority_counts_and_refuses_an_empty_electorate() -> None:
    assert is_majority(2, 3) and not is_majority(1, 3)
    assert is_majority(3, 5) and not is_majority(2, 5)
    assert not is_majority(0, 0)


def test_a_negative_electorate_is_a_bug() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        majority(-1)
