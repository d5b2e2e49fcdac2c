"""ISA-L's ``ec_encode_data`` computes exactly reedsolo's field products (both kernels)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from ec_kernels import CHOICE, KERNELS
from ec_oracle import naive_matmul, reedsolo_shards
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ec.isal_kernel import IsalKernel
from agent.ec.kernels import NUMPY, Kernel
from agent.ec.rs import ReedSolomon

needs_isal = pytest.mark.skipif(
    CHOICE.library is None, reason=f"no ISA-L here: {CHOICE.describe()}"
)


@pytest.fixture(scope="module", params=KERNELS)
def kernel(request: pytest.FixtureRequest) -> Kernel:
    chosen: Kernel = request.param
    return chosen


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(0, 12),
    k=st.integers(1, 20),
    length=st.sampled_from([1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 1000, 4099]),
    offset=st.integers(0, 7),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_reedsolo_products_at_any_length_and_offset(
    kernel: Kernel, *, rows: int, k: int, length: int, offset: int, seed: int
) -> None:
    """Lengths around every vector width and odd start addresses, against the oracle."""
    rng = np.random.default_rng(seed)
    coefs = rng.integers(0, 256, (rows, k), dtype=np.uint8)
    coefs[rng.random((rows, k)) < 0.2] = 0  # zero and one coefficients take other paths
    coefs[rng.random((rows, k)) < 0.2] = 1
    backing = rng.integers(0, 256, k * (length + 8) + 8, dtype=np.uint8)
    inputs = [
        backing[offset + i * (length + 8) : offset + i * (length + 8) + length] for i in range(k)
    ]
    out = np.full((rows, length), 0xA5, dtype=np.uint8)
    kernel.multiply(coefs, inputs, out)
    want = naive_matmul(coefs, [x.tobytes() for x in inputs])
    assert [row.tobytes() for row in out] == want


def test_a_two_dimensional_block_and_a_list_give_the_same_rows(kernel: Kernel) -> None:
    rng = np.random.default_rng(7)
    coefs = rng.integers(0, 256, (3, 5), dtype=np.uint8)
    block = rng.integers(0, 256, (5, 777), dtype=np.uint8)
    as_block = np.empty((3, 777), dtype=np.uint8)
    as_list = [np.empty(777, dtype=np.uint8) for _ in range(3)]
    kernel.multiply(coefs, block, as_block)
    kernel.multiply(coefs, list(block), as_list)
    assert all(np.array_equal(a, b) for a, b in zip(as_block, as_list, strict=True))


@needs_isal
@pytest.mark.parametrize("length", [64, 65, 4096 + 1, 200_003])
def test_the_two_thread_split_gives_the_same_bytes(length: int) -> None:
    assert isinstance(CHOICE.kernel, IsalKernel)
    split = IsalKernel(CHOICE.kernel.library, split_min=1)
    rng = np.random.default_rng(length)
    coefs = rng.integers(0, 256, (4, 10), dtype=np.uint8)
    inputs = rng.integers(0, 256, (10, length), dtype=np.uint8)
    one, two = np.empty((4, length), dtype=np.uint8), np.empty((4, length), dtype=np.uint8)
    CHOICE.kernel.multiply(coefs, inputs, one)
    split.multiply(coefs, inputs, two)
    assert np.array_equal(one, two)
    assert [r.tobytes() for r in one] == naive_matmul(coefs, [x.tobytes() for x in inputs])


@needs_isal
@pytest.mark.parametrize(("k", "m"), [(3, 2), (4, 2), (8, 3), (10, 4)])
def test_shards_are_interchangeable_between_kernels(k: int, m: int) -> None:
    """A pool written on a node with ISA-L is read on one without, and back."""
    fast, slow = ReedSolomon(k, m, kernel=CHOICE.kernel), ReedSolomon(k, m, kernel=NUMPY)
    rng = random.Random(k * 10 + m)
    data = rng.randbytes(k * 5000 - 3)
    by_fast, by_slow = fast.encode(data), slow.encode(data)
    assert by_fast == by_slow
    lost = rng.sample(range(k + m), m)
    for writer, reader in ((by_fast, slow), (by_slow, fast)):
        have = {i: writer[i] for i in range(k + m) if i not in lost}
        assert reader.decode(have, len(data)) == data
        assert reader.rebuild(have, lost) == {i: by_fast[i] for i in lost}
    small = rng.randbytes(3 * k + 1)  # the oracle, too, for a size reedsolo can do quickly
    assert fast.encode(small) == reedsolo_shards(k, m, small)


@needs_isal
def test_tables_are_cached_per_matrix() -> None:
    assert isinstance(CHOICE.kernel, IsalKernel)
    coefs = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    first = CHOICE.kernel.tables(coefs)
    assert CHOICE.kernel.tables(coefs.copy()) is first
    assert CHOICE.kernel.tables(coefs[::-1].copy()) is not first
