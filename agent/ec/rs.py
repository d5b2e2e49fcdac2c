"""The ``rs`` plugin: systematic Reed-Solomon over GF(2^8), bit-for-bit reedsolo's code.

For every byte position ``j``, the column ``shard[0][j] .. shard[k+m-1][j]`` is exactly
the codeword ``reedsolo.RSCodec(m).encode(bytes(shard[i][j] for i in range(k)))``, so any
reedsolo user can read our shards without us (no lock-in to this code base) and reedsolo
serves as an independent oracle in the tests.

The code is linear, so instead of reimplementing reedsolo's polynomial division we ask
reedsolo itself for the parity of each unit vector: that gives the ``m x k`` parity
matrix ``P``, and the systematic generator is ``G = [I; P]``. Encoding multiplies the data
by ``P``; rebuilding any shards from any k others multiplies by
``G[wanted] @ inverse(G[available])``. Both go through the vectorised
:func:`agent.ec.kernel.gf_matmul`; the small inversions are cached per erasure pattern.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import reedsolo
from numpy.typing import NDArray

from agent.ec.base import BytesLike, check_indexes, check_params, check_shards
from agent.ec.errors import ECError, InsufficientShards, SizeMismatch
from agent.ec.gf import PRIM, SingularMatrix, mat_inv, mat_mul
from agent.ec.kernel import gf_matmul

__all__ = ["ReedSolomon", "generator_matrix", "parity_matrix", "recovery_matrix"]

U8 = NDArray[np.uint8]


def _frozen(a: U8) -> U8:
    a.flags.writeable = False
    return a


@lru_cache(maxsize=256)
def parity_matrix(k: int, m: int) -> U8:
    """``P[p, i]``: weight of data shard ``i`` in parity shard ``k + p``, taken from reedsolo."""
    check_params(k, m)
    rs = reedsolo.RSCodec(m, nsize=255, fcr=0, prim=PRIM, generator=2, c_exp=8)
    columns = []
    for i in range(k):
        unit = bytearray(k)
        unit[i] = 1
        codeword = bytes(rs.encode(bytes(unit)))
        columns.append(np.frombuffer(codeword[k:], dtype=np.uint8))
    return _frozen(np.stack(columns, axis=1))


@lru_cache(maxsize=256)
def generator_matrix(k: int, m: int) -> U8:
    """The systematic generator ``[I; P]``: shard ``r`` = ``G[r] @ data``."""
    return _frozen(np.concatenate([np.eye(k, dtype=np.uint8), parity_matrix(k, m)]))


@lru_cache(maxsize=1024)
def recovery_matrix(k: int, m: int, inputs: tuple[int, ...], outputs: tuple[int, ...]) -> U8:
    """Coefficients that turn the k shards ``inputs`` into the shards ``outputs``."""
    g = generator_matrix(k, m)
    try:
        inverse = mat_inv(g[list(inputs)])
    except SingularMatrix as exc:  # pragma: no cover - impossible for an MDS code
        raise ECError(f"shards {list(inputs)} cannot be inverted, which is a codec bug") from exc
    return _frozen(mat_mul(g[list(outputs)], inverse))


def _array(shard: BytesLike) -> U8:
    return np.frombuffer(shard, dtype=np.uint8)


@dataclass(frozen=True)
class ReedSolomon:
    """reedsolo-compatible systematic Reed-Solomon code with k data and m parity shards."""

    k: int
    m: int
    plugin: str = field(default="rs", init=False)

    def __post_init__(self) -> None:
        check_params(self.k, self.m)

    @property
    def n(self) -> int:
        """Total shards, k + m."""
        return self.k + self.m

    def shard_size(self, size: int) -> int:
        """``ceil(size / k)``: the object is cut in k equal shards, the last zero-padded."""
        return -(-size // self.k)

    def encode(self, data: BytesLike) -> list[bytes]:
        """Split ``data`` into k shards (zero-padding the tail) and append m parity shards."""
        view = memoryview(data).cast("B")
        length = self.shard_size(view.nbytes)
        shards: list[bytes] = []
        for i in range(self.k):
            chunk = view[i * length : (i + 1) * length]
            pad = length - chunk.nbytes
            shards.append(bytes(chunk) if pad == 0 else b"".join((chunk, bytes(pad))))
        parity = gf_matmul(
            parity_matrix(self.k, self.m), [_array(s) for s in shards], length, reuse_out=True
        )
        shards.extend(row.tobytes() for row in parity)
        return shards

    def decode(self, shards: Mapping[int, BytesLike], size: int) -> bytes:
        """Rebuild the object; data shards that are present are joined without any math."""
        length = check_shards(shards, self.n)
        if not shards:
            raise InsufficientShards(0, self.k)
        if type(size) is not int or not 0 <= size <= self.k * length:
            raise SizeMismatch(size, self.k * length)
        needed = range(-(-size // length)) if length else range(0)
        missing = tuple(i for i in needed if i not in shards)
        rebuilt = self._compute(shards, missing, length) if missing else {}
        parts: list[BytesLike] = []
        remaining = size
        for i in needed:
            shard = shards[i] if i in shards else rebuilt[i].data
            take = min(length, remaining)
            parts.append(shard if take == length else memoryview(shard).cast("B")[:take])
            remaining -= take
        return b"".join(parts)

    def rebuild(self, shards: Mapping[int, BytesLike], missing: Iterable[int]) -> dict[int, bytes]:
        """Recompute the ``missing`` shards (data or parity) from k of the other shards.

        Shards listed in ``missing`` are never used as inputs, even if present, so this
        also serves to verify a suspect shard.
        """
        wanted = tuple(check_indexes(missing, self.n))
        length = check_shards(shards, self.n)
        if not wanted:
            return {}
        rows = self._compute(shards, wanted, length)
        return {i: row.tobytes() for i, row in rows.items()}

    def _compute(
        self, shards: Mapping[int, BytesLike], wanted: Sequence[int], length: int
    ) -> dict[int, U8]:
        """Rows for ``wanted``; they live in the kernel workspace, so consume them at once."""
        excluded = set(wanted)
        available = [i for i in sorted(shards) if i not in excluded]
        if len(available) < self.k:
            raise InsufficientShards(len(available), self.k)
        inputs = tuple(available[: self.k])  # lowest indexes: data shards first
        coefs = recovery_matrix(self.k, self.m, inputs, tuple(wanted))
        out = gf_matmul(coefs, [_array(shards[i]) for i in inputs], length, reuse_out=True)
        return {index: out[r] for r, index in enumerate(wanted)}
