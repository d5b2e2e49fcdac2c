"""The bulk kernel against a byte-by-byte reference built from reedsolo's products."""

from __future__ import annotations

import numpy as np
import pytest
from ec_oracle import naive_matmul
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ec import kernel
from agent.ec.kernel import gf_matmul


def _check(coefs: np.ndarray, inputs: list[bytes], block: int | None = None) -> None:
    length = len(inputs[0])
    arrays = [np.frombuffer(x, dtype=np.uint8) for x in inputs]
    got = gf_matmul(coefs, arrays, length, block=block)
    assert got.shape == (coefs.shape[0], length)
    assert [row.tobytes() for row in got] == naive_matmul(coefs, inputs)


@settings(max_examples=120, deadline=None)
@given(
    rows=st.integers(1, 19),
    k=st.integers(1, 40),
    length=st.integers(0, 300),
    block=st.sampled_from([2, 6, 64, kernel.BLOCK]),
    sparsity=st.sampled_from([0.0, 0.3, 0.9]),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference(
    *, rows: int, k: int, length: int, block: int, sparsity: float, seed: int
) -> None:
    """Covers pair groups (1-2 rows), byte groups (3-8), mixes (9+), the 32-input switch,
    odd lengths, several blocks per call and the coefficient 0 / 1 shortcuts."""
    rng = np.random.default_rng(seed)
    coefs = rng.integers(0, 256, (rows, k), dtype=np.uint8)
    coefs[rng.random(coefs.shape) < sparsity] = 0
    coefs[rng.random(coefs.shape) < sparsity / 2] = 1
    inputs = [rng.integers(0, 256, length, dtype=np.uint8).tobytes() for _ in range(k)]
    _check(coefs, inputs, block)


@pytest.mark.parametrize("rows", [1, 2, 3, 8, 9])
def test_unaligned_inputs_and_large_blocks(rows: int) -> None:
    """Inputs at odd addresses (uint16 views unaligned) across several full blocks."""
    rng = np.random.default_rng(rows)
    length = 2 * kernel.BLOCK + 3
    k = 3
    backing = rng.integers(0, 256, k * length + 1, dtype=np.uint8)
    arrays = [backing[1 + i * length : 1 + (i + 1) * length] for i in range(k)]
    coefs = rng.integers(0, 256, (rows, k), dtype=np.uint8)
    got = gf_matmul(coefs, arrays, length)
    want = naive_matmul(coefs, [a.tobytes() for a in arrays])
    assert [row.tobytes() for row in got] == want


def test_all_zero_coefficients_give_zero_rows() -> None:
    inputs = [bytes(range(7)), bytes(range(7, 14))]
    for rows in (1, 2, 5):
        coefs = np.zeros((rows, 2), dtype=np.uint8)
        got = gf_matmul(coefs, [np.frombuffer(x, dtype=np.uint8) for x in inputs], 7)
        assert not got.any()


def test_identity_copies_and_xor_of_ones() -> None:
    a, b = bytes([1, 2, 3, 250]), bytes([7, 7, 0, 255])
    arrays = [np.frombuffer(a, dtype=np.uint8), np.frombuffer(b, dtype=np.uint8)]
    got = gf_matmul(np.array([[1, 0], [0, 1], [1, 1]], dtype=np.uint8), arrays, 4)
    assert got[0].tobytes() == a
    assert got[1].tobytes() == b
    assert got[2].tobytes() == bytes(x ^ y for x, y in zip(a, b, strict=True))


def test_reuse_out_is_overwritten_by_next_call() -> None:
    """Documents the contract: a reused output must be consumed before the next call."""
    x = np.arange(10, dtype=np.uint8)
    first = gf_matmul(np.array([[2]], dtype=np.uint8), [x], 10, reuse_out=True)
    kept = first.tobytes()
    gf_matmul(np.array([[3]], dtype=np.uint8), [x], 10, reuse_out=True)
    assert first.tobytes() != kept
    fresh = gf_matmul(np.array([[2]], dtype=np.uint8), [x], 10)
    gf_matmul(np.array([[3]], dtype=np.uint8), [x], 10, reuse_out=True)
    assert fresh.tobytes() == kept


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="inputs"):
        gf_matmul(np.ones((1, 2), dtype=np.uint8), [np.zeros(3, dtype=np.uint8)], 3)
    assert gf_matmul(np.ones((0, 1), dtype=np.uint8), [np.zeros(3, dtype=np.uint8)], 3).shape == (
        0,
        3,
    )


def test_many_rows_shrink_the_block_and_stay_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "SCRATCH_BUDGET", 64 * 1024)  # forces several small blocks
    rng = np.random.default_rng(7)
    rows, k, length = 40, 3, 9001
    coefs = rng.integers(0, 256, (rows, k), dtype=np.uint8)
    inputs = [rng.integers(0, 256, length, dtype=np.uint8).tobytes() for _ in range(k)]
    _check(coefs, inputs, block=None)


def test_clear_workspace_keeps_results_correct() -> None:
    rng = np.random.default_rng(8)
    coefs = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    inputs = [rng.integers(0, 256, 1000, dtype=np.uint8).tobytes() for _ in range(4)]
    _check(coefs, inputs)
    kernel.clear_workspace()
    _check(coefs, inputs)
