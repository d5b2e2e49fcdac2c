"""Stable hashes: the same input gives the same number on every node, run and platform.

Placement must agree across the cluster without talking, so nothing here may depend on
the process (Python's ``hash()`` is salted per process), the CPU or the libm. Names go
through BLAKE2b; the bulk per-draw hashing is a 64-bit integer mixer (the splitmix64
finaliser) in numpy, whose ``uint64`` arithmetic wraps the same way everywhere; and the
logarithm straw2 needs is computed from ``+ - * /`` only, which IEEE 754 rounds
identically on every machine (``numpy.log`` may use different SIMD code per CPU).
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray

__all__ = ["F64", "U64", "ln_unit", "mix64", "object_pg", "stable_hash64"]

U64 = NDArray[np.uint64]
F64 = NDArray[np.float64]

_PERSON = b"rackcloud.place"

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S12 = np.uint64(12)
_ONE_BITS = np.uint64(0x3FF0000000000001)  # the bits of 1.0 + 2**-52
_SQRT_HALF_BITS = np.int64(0x3FE6A09E667F3BCD)  # the bits of sqrt(0.5)
_EXP_MASK = np.int64(-1 << 52)
_S52 = np.int64(52)
_MAGIC = 6755399441055744.0  # 1.5 * 2**52
_MAGIC_BITS = np.int64(0x4338000000000000)  # its bits
_LN2 = 0.6931471805599453
# 2 * atanh(s) = sum of 2 s^(2i+1) / (2i+1); |s| <= 0.1716 after range reduction, so
# nine terms leave an absolute error below 1e-14 (measured against math.log in the tests).
_ATANH2 = tuple(2.0 / (2 * i + 1) for i in range(9))


def stable_hash64(*parts: str | int | bytes) -> int:
    """Hash a tuple of names and integers to 64 bits, unambiguously (each part is tagged
    with its type and length, so ``("ab", "c")`` and ``("a", "bc")`` differ)."""
    h = hashlib.blake2b(digest_size=8, person=_PERSON)
    for part in parts:
        if isinstance(part, bytes):
            tag, data = b"b", part
        elif isinstance(part, str):
            tag, data = b"s", part.encode()
        else:
            tag, data = b"i", str(part).encode()
        h.update(tag + len(data).to_bytes(4, "big") + data)
    return int.from_bytes(h.digest(), "big")


def object_pg(pool_id: int, pg_count: int, name: str, chunk: int) -> int:
    """The placement group of one chunk (fixed-size piece) of an object in a pool.

    64 bits mod ``pg_count`` is uniform to within 2**-40 for any realistic PG count.
    """
    if pg_count < 1:
        raise ValueError("pg_count must be positive")
    return stable_hash64("object", pool_id, name, chunk) % pg_count


def mix64(x: U64) -> U64:
    """The splitmix64 finaliser, element-wise: a cheap bijection with full avalanche.

    Takes arrays only (numpy warns on overflow of scalars but wraps arrays silently).
    """
    x = x ^ (x >> _S30)
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


def ln_unit(h: U64) -> F64:
    """``ln(u)`` for ``u = 2 - (1 + (h >> 12 | 1) / 2**52)`` in (0, 1), bit-for-bit
    reproducible.

    The top bits of the hash become the mantissa of a float in (1, 2) (the lowest bit set,
    so ``u`` is never exactly 1 and ``ln(u)`` is never 0), so ``u`` is exact. Range
    reduction works on the bits (``u = 2**k * z``, ``z`` in [sqrt(1/2), sqrt(2))), then
    ``ln z = 2 atanh((z - 1) / (z + 1))`` by a short series. In-place steps keep the
    temporaries few: this is the hot loop of placement.
    """
    bits = h >> _S12
    bits |= _ONE_BITS
    u = bits.view(np.float64)
    np.subtract(2.0, u, out=u)
    ub = u.view(np.int64)
    t = ub - _SQRT_HALF_BITS
    k = t >> _S52
    t &= _EXP_MASK
    np.subtract(ub, t, out=t)
    z = t.view(np.float64)
    s = z - 1.0
    z += 1.0
    s /= z
    q = np.multiply(s, s, out=z)
    acc = q * _ATANH2[-1]
    acc += _ATANH2[-2]
    for c in _ATANH2[-3::-1]:
        acc *= q
        acc += c
    acc *= s
    # int64 -> float64 for small k by the 1.5 * 2**52 trick: plain SIMD add and subtract.
    k += _MAGIC_BITS
    kf = k.view(np.float64)
    kf -= _MAGIC
    kf *= _LN2
    acc += kf
    return acc
