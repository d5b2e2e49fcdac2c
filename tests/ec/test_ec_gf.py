"""GF(2^8) tables and matrix algebra, checked against reedsolo's table-free product."""

from __future__ import annotations

import numpy as np
import pytest
import reedsolo
from ec_oracle import mul_table
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ec import gf


def test_mul_table_matches_reedsolo() -> None:
    assert np.array_equal(gf.MUL, mul_table())


def test_exp_log_match_reedsolo_tables() -> None:
    log, exp, _ = reedsolo.init_tables(prim=0x11D, generator=2, c_exp=8)
    assert list(gf.EXP[:255]) == list(exp[:255])
    assert [gf.LOG[a] for a in range(1, 256)] == [log[a] for a in range(1, 256)]


def test_scalar_mul_and_inverse() -> None:
    table = mul_table()
    for a in range(256):
        for b in (0, 1, 2, 0x53, 0xCA, 255):
            assert gf.mul(a, b) == table[a, b]
        if a:
            assert table[a, gf.inverse(a)] == 1
    with pytest.raises(ZeroDivisionError):
        gf.inverse(0)


def test_mul_table_is_read_only() -> None:
    with pytest.raises(ValueError, match="read-only"):
        gf.MUL[2, 2] = 0


def _naive_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    table = mul_table()
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.uint8)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            acc = 0
            for t in range(a.shape[1]):
                acc ^= int(table[a[i, t], b[t, j]])
            out[i, j] = acc
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_mat_mul_matches_naive(r: int, inner: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (r, inner), dtype=np.uint8)
    b = rng.integers(0, 256, (inner, c), dtype=np.uint8)
    assert np.array_equal(gf.mat_mul(a, b), _naive_matmul(a, b))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_mat_inv_gives_identity(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    try:
        inv = gf.mat_inv(a)
    except gf.SingularMatrix:
        # Singular: then some non-trivial combination of columns must vanish; check by
        # confirming rank < n with an independent elimination on the naive product.
        assert _rank(a) < n
        return
    eye = np.eye(n, dtype=np.uint8)
    assert np.array_equal(_naive_matmul(a, inv), eye)
    assert np.array_equal(_naive_matmul(inv, a), eye)


def _rank(a: np.ndarray) -> int:
    table = mul_table()
    rows = [list(map(int, r)) for r in a]
    rank = 0
    for col in range(a.shape[1]):
        pivot = next((i for i in range(rank, len(rows)) if rows[i][col]), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        inv = next(x for x in range(1, 256) if table[rows[rank][col], x] == 1)
        rows[rank] = [int(table[inv, v]) for v in rows[rank]]
        for i in range(len(rows)):
            if i != rank and rows[i][col]:
                f = rows[i][col]
                rows[i] = [v ^ int(table[f, w]) for v, w in zip(rows[i], rows[rank], strict=True)]
        rank += 1
    return rank


def test_mat_inv_rejects_singular_and_non_square() -> None:
    with pytest.raises(gf.SingularMatrix):
        gf.mat_inv(np.array([[1, 1], [1, 1]], dtype=np.uint8))
    with pytest.raises(ValueError, match="invert"):
        gf.mat_inv(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="multiply"):
        gf.mat_mul(np.zeros((2, 3), dtype=np.uint8), np.zeros((2, 3), dtype=np.uint8))
