"""The ``rs`` plugin: reedsolo's code exactly, in both directions, and every erasure pattern."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import reedsolo
from ec_kernels import KERNELS
from ec_oracle import column, reedsolo_shards
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ec import (
    BytesLike,
    Codec,
    InsufficientShards,
    InvalidParameters,
    ShardIndexError,
    SizeMismatch,
    UnequalShards,
)
from agent.ec.kernels import Kernel
from agent.ec.rs import ReedSolomon, generator_matrix, parity_matrix, recovery_matrix

small_km = st.tuples(st.integers(2, 12), st.integers(1, 6))


@pytest.fixture(scope="module", params=KERNELS)
def kernel(request: pytest.FixtureRequest) -> Kernel:
    """Every test that takes ``kernel`` runs once per kernel (module scope: hypothesis)."""
    chosen: Kernel = request.param
    return chosen


# --- our parity is reedsolo's parity -------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(km=small_km, data=st.binary(max_size=200))
def test_shards_equal_reedsolo_encoding(km: tuple[int, int], data: bytes, kernel: Kernel) -> None:
    k, m = km
    assert ReedSolomon(k, m, kernel=kernel).encode(data) == reedsolo_shards(k, m, data)


@pytest.mark.parametrize(("k", "m"), [(2, 253), (200, 55), (127, 128)])
def test_extreme_geometries_equal_reedsolo(k: int, m: int, kernel: Kernel) -> None:
    rng = random.Random(k * 1000 + m)
    data = rng.randbytes(3 * k - 1)
    shards = ReedSolomon(k, m, kernel=kernel).encode(data)
    assert shards == reedsolo_shards(k, m, data)


def test_independent_of_other_reedsolo_codecs_in_process(kernel: Kernel) -> None:
    """reedsolo keeps field tables in module globals; another field must not leak in."""
    other = reedsolo.RSCodec(4, prim=0x187, fcr=120)
    other.encode(b"swap the globals")
    parity_matrix.cache_clear()
    data = bytes(range(50))
    assert ReedSolomon(5, 3, kernel=kernel).encode(data) == reedsolo_shards(5, 3, data)


def test_parity_matrix_is_the_response_to_unit_vectors() -> None:
    rs = reedsolo.RSCodec(3)
    p = parity_matrix(4, 3)
    for i in range(4):
        unit = bytes(1 if j == i else 0 for j in range(4))
        assert bytes(p[:, i]) == bytes(rs.encode(unit))[4:]
    g = generator_matrix(4, 3)
    assert np.array_equal(g[:4], np.eye(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="read-only"):
        p[0, 0] = 9


# --- reedsolo reads our shards ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(km=small_km, data=st.binary(min_size=1, max_size=120), seed=st.integers(0, 2**32 - 1))
def test_reedsolo_decodes_our_shards_with_erasures(
    km: tuple[int, int], data: bytes, seed: int, kernel: Kernel
) -> None:
    k, m = km
    shards = ReedSolomon(k, m, kernel=kernel).encode(data)
    rng = random.Random(seed)
    lost = sorted(rng.sample(range(k + m), rng.randint(1, m)))
    oracle = reedsolo.RSCodec(m)
    rebuilt = bytearray()
    for j in range(len(shards[0])):
        col = bytearray(column(shards, j))
        for pos in lost:
            col[pos] = 0
        msg, _, _ = oracle.decode(col, erase_pos=lost, only_erasures=True)
        rebuilt += bytes(msg)
    # reedsolo returns column-major data; regroup into shards and join.
    length = len(shards[0])
    data_shards = [bytes(rebuilt[j * k + i] for j in range(length)) for i in range(k)]
    assert b"".join(data_shards)[: len(data)] == data


# --- we decode every erasure pattern ---------------------------------------------------------

SMALL = [(k, m) for k in range(2, 7) for m in range(1, 6) if k + m <= 7]


@pytest.mark.parametrize(("k", "m"), [*SMALL, (8, 3), (10, 4)])
def test_every_erasure_pattern_decodes_and_rebuilds(k: int, m: int, kernel: Kernel) -> None:
    data = random.Random(k * 31 + m).randbytes(k * 13 - 5)  # odd shard length, padded tail
    codec = ReedSolomon(k, m, kernel=kernel)
    shards = reedsolo_shards(k, m, data)  # expected shards come from reedsolo, not from us
    assert codec.encode(data) == shards
    n = k + m
    sizes = range(m + 1) if n <= 7 else [m]
    for lost_count in sizes:
        for lost in itertools.combinations(range(n), lost_count):
            have = {i: shards[i] for i in range(n) if i not in lost}
            assert codec.decode(have, len(data)) == data, lost
            assert b"".join(codec.decode_parts(have, len(data))) == data, lost
            assert codec.rebuild(have, lost) == {i: shards[i] for i in lost}, lost


@settings(max_examples=40, deadline=None)
@given(
    km=st.tuples(st.integers(2, 40), st.integers(1, 16)),
    size=st.integers(0, 2000),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_erasures_larger_codes(
    km: tuple[int, int], size: int, seed: int, kernel: Kernel
) -> None:
    k, m = km
    rng = random.Random(seed)
    data = rng.randbytes(size)
    codec = ReedSolomon(k, m, kernel=kernel)
    shards = codec.encode(data)
    lost = rng.sample(range(k + m), rng.randint(0, m))
    have = {i: shards[i] for i in range(k + m) if i not in lost}
    assert codec.decode(have, size) == data
    assert codec.rebuild(have, lost) == {i: shards[i] for i in lost}
    if size:  # spot-check the parity columns against reedsolo without encoding everything
        j = rng.randrange(len(shards[0]))
        col = column(shards, j)
        assert bytes(reedsolo.RSCodec(m).encode(col[:k])) == col


# --- API details -----------------------------------------------------------------------------


def test_layout_and_padding(kernel: Kernel) -> None:
    codec = ReedSolomon(4, 2, kernel=kernel)
    assert codec.shard_size(0) == 0
    assert codec.shard_size(1) == 1
    assert codec.shard_size(8) == 2
    assert codec.shard_size(9) == 3
    shards = codec.encode(b"abcdefghi")
    assert shards[:4] == [b"abc", b"def", b"ghi", b"\x00\x00\x00"]
    assert len({len(s) for s in shards}) == 1


def test_empty_object(kernel: Kernel) -> None:
    codec = ReedSolomon(3, 2, kernel=kernel)
    shards = codec.encode(b"")
    assert shards == [b""] * 5
    assert codec.decode({3: b"", 4: b"", 0: b""}, 0) == b""
    assert codec.rebuild({0: b"", 1: b"", 2: b""}, [3, 4]) == {3: b"", 4: b""}


def test_accepts_bytearray_and_memoryview(kernel: Kernel) -> None:
    codec = ReedSolomon(3, 2, kernel=kernel)
    data = bytes(range(100))
    shards = codec.encode(bytearray(data))
    assert codec.encode(memoryview(data)) == shards
    have: dict[int, BytesLike] = {1: bytearray(shards[1]), 3: memoryview(shards[3]), 4: shards[4]}
    assert codec.decode(have, 100) == data


def test_healthy_read_and_short_size_need_no_parity(kernel: Kernel) -> None:
    codec = ReedSolomon(4, 2, kernel=kernel)
    data = bytes(range(200))
    shards = codec.encode(data)
    assert codec.decode({i: shards[i] for i in range(4)}, 200) == data
    # Only the shards covering ``size`` are needed: two data shards hold the first 100 bytes.
    assert codec.decode({0: shards[0], 1: shards[1]}, 100) == data[:100]
    assert codec.decode(dict(enumerate(shards)), 7) == data[:7]


def test_shards_are_read_only_and_never_follow_a_mutable_input(kernel: Kernel) -> None:
    codec = ReedSolomon(4, 2, kernel=kernel)
    source = bytearray(range(200))
    shards = codec.encode(source)
    want = reedsolo_shards(4, 2, bytes(range(200)))
    view = codec.encode(memoryview(source).toreadonly())  # read-only, yet mutable beneath
    source[:] = bytes(200)  # the caller reuses its buffer: the shards must not change
    assert shards == want
    assert view == want
    for shard in shards:
        assert memoryview(shard).readonly


def test_encode_of_immutable_data_views_it_and_decode_parts_view_the_shards(
    kernel: Kernel,
) -> None:
    codec = ReedSolomon(4, 2, kernel=kernel)
    data = bytes(range(256)) * 16
    shards = codec.encode(data)
    whole = np.frombuffer(data, dtype=np.uint8)
    assert all(np.shares_memory(np.frombuffer(s, dtype=np.uint8), whole) for s in shards[:4])
    padded = data[:-5]  # 4091 bytes: three full shards of 1023 and a padded fourth
    cut = codec.encode(padded)
    part = np.frombuffer(padded, dtype=np.uint8)
    assert all(np.shares_memory(np.frombuffer(s, dtype=np.uint8), part) for s in cut[:3])
    assert not np.shares_memory(np.frombuffer(cut[3], dtype=np.uint8), part)
    assert cut == reedsolo_shards(4, 2, padded)
    have = {i: bytes(shards[i]) for i in (0, 2, 3, 4, 5)}
    parts = codec.decode_parts(have, len(data) - 10)
    assert [len(p) for p in parts] == [1024, 1024, 1024, 1014]
    assert b"".join(parts) == data[:-10]
    for i in (0, 2, 3):  # present data shards are handed back, not copied
        given = np.frombuffer(have[i], dtype=np.uint8)
        assert np.shares_memory(np.frombuffer(parts[i], dtype=np.uint8), given)
    assert bytes(parts[1]) == data[1024:2048]  # the one computed


def test_rebuild_never_reads_the_shards_it_rebuilds(kernel: Kernel) -> None:
    codec = ReedSolomon(3, 2, kernel=kernel)
    shards = codec.encode(bytes(range(90)))
    have = dict(enumerate(shards))
    have[0] = bytes(len(shards[0]))  # a corrupt copy of shard 0 is present
    assert codec.rebuild(have, [0]) == {0: shards[0]}
    assert codec.rebuild(have, []) == {}
    good = dict(enumerate(shards))
    assert codec.rebuild(good, [4, 4, 1]) == {1: shards[1], 4: shards[4]}


def test_recovery_matrix_is_cached_and_read_only() -> None:
    a = recovery_matrix(4, 2, (2, 3, 4, 5), (0, 1))
    assert recovery_matrix(4, 2, (2, 3, 4, 5), (0, 1)) is a
    assert not a.flags.writeable


def test_codec_attributes_and_protocol(kernel: Kernel) -> None:
    codec = ReedSolomon(4, 2, kernel=kernel)
    assert (codec.k, codec.m, codec.n, codec.plugin) == (4, 2, 6, "rs")
    assert isinstance(codec, Codec)
    assert codec == ReedSolomon(4, 2, kernel=kernel)
    assert hash(codec) == hash(ReedSolomon(4, 2, kernel=kernel))


# --- errors ----------------------------------------------------------------------------------


def test_insufficient_shards(kernel: Kernel) -> None:
    codec = ReedSolomon(4, 2, kernel=kernel)
    shards = codec.encode(bytes(range(40)))
    with pytest.raises(InsufficientShards) as err:
        codec.decode({1: shards[1], 4: shards[4], 5: shards[5]}, 40)
    assert (err.value.have, err.value.need) == (3, 4)
    with pytest.raises(InsufficientShards) as err:
        codec.rebuild({0: shards[0], 1: shards[1], 2: shards[2], 3: shards[3]}, [0, 5])
    assert (err.value.have, err.value.need) == (3, 4)
    with pytest.raises(InsufficientShards):
        codec.decode({}, 0)


def test_bad_shard_sets(kernel: Kernel) -> None:
    codec = ReedSolomon(2, 1, kernel=kernel)
    with pytest.raises(UnequalShards):
        codec.decode({0: b"ab", 2: b"abc"}, 4)
    with pytest.raises(ShardIndexError):
        codec.decode({3: b"ab", 0: b"ab"}, 4)
    with pytest.raises(ShardIndexError):
        codec.decode({-1: b"ab", 0: b"ab"}, 4)
    with pytest.raises(ShardIndexError):
        codec.rebuild({0: b"a", 1: b"b"}, [3])
    with pytest.raises(ShardIndexError):
        codec.rebuild({0: b"a", 1: b"b"}, [True])
    with pytest.raises(SizeMismatch):
        codec.decode({0: b"ab", 1: b"ab"}, 5)
    with pytest.raises(SizeMismatch):
        codec.decode({0: b"ab", 1: b"ab"}, -1)


@pytest.mark.parametrize(("k", "m"), [(1, 1), (2, 0), (200, 56), (2.0, 1), (True, 1)])
def test_invalid_parameters(k: object, m: object) -> None:
    with pytest.raises(InvalidParameters):
        ReedSolomon(k, m)  # type: ignore[arg-type]
