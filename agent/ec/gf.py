"""Arithmetic in GF(2^8) with reedsolo's field: primitive polynomial 0x11d, generator 2.

The tables are built here (not borrowed from reedsolo's module globals, which any other
``RSCodec`` in the process may swap) and checked against reedsolo in the tests. Matrices
are small (at most 255 x 255) ``uint8`` numpy arrays; only the bulk kernel in
:mod:`agent.ec.kernel` touches shard-sized data.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "EXP",
    "LOG",
    "MUL",
    "PRIM",
    "SingularMatrix",
    "inverse",
    "mat_inv",
    "mat_mul",
    "mul",
]

PRIM = 0x11D
"""reedsolo's default primitive polynomial x^8 + x^4 + x^3 + x^2 + 1."""

Matrix = NDArray[np.uint8]


class SingularMatrix(ValueError):
    """Raised by :func:`mat_inv`; an MDS code never produces one, so seeing it is a bug."""


def _tables() -> tuple[list[int], list[int]]:
    exp = [0] * 510
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= PRIM
    for i in range(255, 510):
        exp[i] = exp[i - 255]
    return exp, log


_EXP_LIST, _LOG_LIST = _tables()
EXP: tuple[int, ...] = tuple(_EXP_LIST)
"""``EXP[i] = 2**i`` for ``0 <= i < 510`` (doubled so ``EXP[LOG[a] + LOG[b]]`` needs no mod)."""
LOG: tuple[int, ...] = tuple(_LOG_LIST)
"""``LOG[a]`` for ``a != 0``; ``LOG[0]`` is meaningless and set to 0."""


def _mul_table() -> Matrix:
    log = np.array(LOG, dtype=np.intp)
    exp = np.array(EXP, dtype=np.uint8)
    table: Matrix = exp[log[:, None] + log[None, :]]
    table[0, :] = 0
    table[:, 0] = 0
    table.flags.writeable = False
    return table


MUL: Matrix = _mul_table()
"""Full 256 x 256 product table: ``MUL[a, b] == a * b``; row ``MUL[c]`` multiplies by ``c``."""


def mul(a: int, b: int) -> int:
    """Product of two field elements."""
    if a == 0 or b == 0:
        return 0
    return EXP[LOG[a] + LOG[b]]


def inverse(a: int) -> int:
    """Multiplicative inverse; ``a`` must not be 0."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^8)")
    return EXP[255 - LOG[a]]


def mat_mul(a: Matrix, b: Matrix) -> Matrix:
    """Matrix product over GF(2^8): sums are XOR, products come from :data:`MUL`."""
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"cannot multiply {a.shape} by {b.shape}")
    if a.shape[1] == 0:
        return np.zeros((a.shape[0], b.shape[1]), dtype=np.uint8)
    products = MUL[a[:, :, None], b[None, :, :]]
    result: Matrix = np.bitwise_xor.reduce(products, axis=1)
    return result


def mat_inv(a: Matrix) -> Matrix:
    """Inverse of a square matrix by Gauss-Jordan elimination, one numpy pass per column."""
    n = a.shape[0]
    if a.shape != (n, n):
        raise ValueError(f"cannot invert a {a.shape} matrix")
    aug = np.concatenate([a.astype(np.uint8), np.eye(n, dtype=np.uint8)], axis=1)
    for col in range(n):
        candidates = np.flatnonzero(aug[col:, col])
        if candidates.size == 0:
            raise SingularMatrix(f"matrix is singular at column {col}")
        pivot = col + int(candidates[0])
        if pivot != col:
            aug[[col, pivot]] = aug[[pivot, col]]
        aug[col] = MUL[inverse(int(aug[col, col]))][aug[col]]
        factors = aug[:, col].copy()
        factors[col] = 0
        aug ^= MUL[factors[:, None], aug[col][None, :]]
    inv: Matrix = aug[:, n:].copy()
    return inv
