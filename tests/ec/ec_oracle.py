"""Independent references for the ec tests: everything here comes from reedsolo.

The codec is never used to compute expected values; products come from reedsolo's
carry-less ``gf_mult_noLUT`` (no lookup tables at all) and parity from reedsolo's own
polynomial encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import reedsolo
from numpy.typing import NDArray


@cache
def mul_table() -> NDArray[np.uint8]:
    """256 x 256 GF(2^8) products computed by reedsolo's table-free multiplication."""
    table = np.zeros((256, 256), dtype=np.uint8)
    for a in range(256):
        for b in range(256):
            table[a, b] = reedsolo.gf_mult_noLUT(a, b, prim=0x11D)
    return table


def naive_matmul(coefs: NDArray[np.uint8], inputs: Sequence[bytes]) -> list[bytes]:
    """``coefs @ inputs`` byte by byte with the reedsolo product table."""
    table = mul_table()
    arrays = [np.frombuffer(x, dtype=np.uint8) for x in inputs]
    length = len(inputs[0]) if inputs else 0
    out = []
    for row in coefs:
        acc = np.zeros(length, dtype=np.uint8)
        for c, x in zip(row, arrays, strict=True):
            acc ^= table[int(c)][x]
        out.append(acc.tobytes())
    return out


def column(shards: Sequence[bytes], j: int) -> bytes:
    return bytes(shard[j] for shard in shards)


def reedsolo_shards(k: int, m: int, data: bytes) -> list[bytes]:
    """Shards as reedsolo would write them: zero-pad to k * ceil(len/k), encode columns."""
    length = -(-len(data) // k)
    padded = data + bytes(k * length - len(data))
    rs = reedsolo.RSCodec(m)
    cols = [
        bytes(rs.encode(bytes(padded[i * length + j] for i in range(k)))) for j in range(length)
    ]
    return [bytes(col[i] for col in cols) for i in range(k + m)]
