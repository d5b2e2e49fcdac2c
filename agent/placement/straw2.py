"""Straw2 draws: weighted rendezvous hashing, vectorised.

Each candidate draws ``ln(u) / weight`` with ``u`` in (0, 1) from a stable hash of
(placement group, candidate, round); the highest draw wins. That is an exponential race,
so a candidate wins with probability ``weight / total``, and adding, removing or
reweighting one candidate only moves what that candidate wins or loses: every other
candidate's draw is unchanged (CRUSH's straw2, Weil et al.).
"""

from __future__ import annotations

import numpy as np

from agent.placement.hashing import F64, U64, ln_unit, mix64, stable_hash64

__all__ = ["draws", "inverse", "salted"]


def salted(uids: U64, *salt: str | int) -> U64:
    """Per-round candidate keys: the same candidate draws independently in each round."""
    return mix64(uids ^ np.uint64(stable_hash64("round", *salt)))


def inverse(weights: F64) -> F64:
    """``1 / weight``, and +inf for weight 0 so its draw is -inf and it never wins."""
    out = np.full(weights.shape, np.inf)
    np.divide(1.0, weights, out=out, where=weights > 0)
    return out


def draws(keys: U64, inv_weights: F64) -> F64:
    """The straw2 draw ``ln(u) / weight`` for each ``pg_key ^ candidate_key``.

    ``ln(u)`` is strictly negative (see :func:`ln_unit`), so weight 0 gives exactly -inf.
    """
    out = ln_unit(mix64(keys))
    out *= inv_weights
    return out
