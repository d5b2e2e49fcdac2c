"""The ``rs`` plugin: systematic Reed-Solomon over GF(2^8), bit-for-bit reedsolo's code.

For every byte position ``j``, the column ``shard[0][j] .. shard[k+m-1][j]`` is exactly
the codeword ``reedsolo.RSCodec(m).encode(bytes(shard[i][j] for i in range(k)))``, so any
reedsolo user can read our shards without us (no lock-in to this code base) and reedsolo
serves as an independent oracle in the tests.

The code is linear, so instead of reimplementing reedsolo's polynomial division we ask
reedsolo itself for the parity of each unit vector: that gives the ``m x k`` parity
matrix ``P``, and the systematic generator is ``G = [I; P]``. Encoding multiplies the data
by ``P``; rebuilding any shards from any k others multiplies by
``G[wanted] @ inverse(G[available])``. Both are one matrix product over the shards, done
by the host's kernel (:mod:`agent.ec.kernels`: ISA-L's SIMD code when a library loads,
else numpy); the small inversions are our own GF code, cached per erasure pattern.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import reedsolo
from numpy.typing import NDArray

from agent.ec.base import BytesLike, Shard, check_indexes, check_params, check_shards
from agent.ec.buffers import Buffers
from agent.ec.errors import ECError, InsufficientShards, SizeMismatch
from agent.ec.gf import PRIM, SingularMatrix, mat_inv, mat_mul
from agent.ec.kernels import Kernel, default_kernel

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


def _view(array: U8) -> memoryview:
    return array.data.toreadonly()


@dataclass(frozen=True)
class ReedSolomon:
    """reedsolo-compatible systematic Reed-Solomon code with k data and m parity shards.

    ``kernel`` computes the products (:func:`agent.ec.kernels.default_kernel` unless one
    is given); it changes the speed, never the shards.
    """

    k: int
    m: int
    kernel: Kernel = field(default_factory=default_kernel, compare=False, repr=False)
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

    def encode(self, data: BytesLike) -> list[Shard]:
        """Split ``data`` into k shards (zero-padding the tail) and append m parity shards.

        Data shards are read-only views of ``data`` when it is ``bytes`` (immutable), so
        the bytes written are the parity and, when ``size`` is not a multiple of ``k``,
        the zero-padded last shard(s). Anything else (a ``bytearray``, a view of one) is
        copied once first, so a caller reusing its buffer never changes its shards.
        """
        view = memoryview(data).cast("B")
        size = view.nbytes
        length = self.shard_size(size)
        if length == 0:
            return [b""] * self.n
        flat = np.frombuffer(view, dtype=np.uint8)
        if not isinstance(view.obj, bytes):
            flat = flat.copy()  # the caller may change its buffer later
        full = size // length
        pieces: Buffers
        if full == self.k:
            pieces = flat.reshape(self.k, length)
        else:  # pad only the tail: the full shards stay views
            tail = np.zeros((self.k - full, length), dtype=np.uint8)
            tail.reshape(-1)[: size - full * length] = flat[full * length :]
            pieces = [*flat[: full * length].reshape(full, length), *tail]
        parity = np.empty((self.m, length), dtype=np.uint8)
        self.kernel.multiply(parity_matrix(self.k, self.m), pieces, parity)
        shards: list[Shard] = [_view(piece) for piece in pieces]
        return shards + [_view(row) for row in parity]

    def decode(self, shards: Mapping[int, BytesLike], size: int) -> Shard:
        """Rebuild the object as one buffer: :meth:`decode_parts`, joined (one copy)."""
        return b"".join(self.decode_parts(shards, size))

    def decode_parts(self, shards: Mapping[int, BytesLike], size: int) -> list[Shard]:
        """The object as its data shards in order, trimmed to ``size``, with no copy.

        Data shards that are present are returned as read-only views of the buffers
        given (keep those unchanged while the parts are in use); missing ones are
        computed, which is the only work. Callers that hash, send or write the object
        do so part by part; :meth:`decode` joins them.
        """
        length = check_shards(shards, self.n)
        if not shards:
            raise InsufficientShards(0, self.k)
        if type(size) is not int or not 0 <= size <= self.k * length:
            raise SizeMismatch(size, self.k * length)
        needed = -(-size // length) if length else 0
        missing = [i for i in range(needed) if i not in shards]
        rebuilt: dict[int, memoryview] = {}
        if missing:
            out = np.empty((len(missing), length), dtype=np.uint8)
            self._compute(shards, self._inputs(shards, missing), missing, out)
            rows = out.reshape(-1).data.toreadonly()
            rebuilt = {i: rows[r * length : (r + 1) * length] for r, i in enumerate(missing)}
        parts: list[Shard] = []
        for i in range(needed):
            part = rebuilt[i] if i in rebuilt else memoryview(shards[i]).toreadonly().cast("B")
            take = min(length, size - i * length)
            parts.append(part if take == length else part[:take])
        return parts

    def rebuild(self, shards: Mapping[int, BytesLike], missing: Iterable[int]) -> dict[int, Shard]:
        """Recompute the ``missing`` shards (data or parity) from k of the other shards.

        Shards listed in ``missing`` are never used as inputs, even if present, so this
        also serves to verify a suspect shard.
        """
        wanted = check_indexes(missing, self.n)
        length = check_shards(shards, self.n)
        if not wanted:
            return {}
        inputs = self._inputs(shards, wanted)
        out = np.empty((len(wanted), length), dtype=np.uint8)
        self._compute(shards, inputs, wanted, out)
        return {index: _view(out[r]) for r, index in enumerate(wanted)}

    def _inputs(self, shards: Mapping[int, BytesLike], wanted: Sequence[int]) -> tuple[int, ...]:
        """The k lowest-indexed shards not wanted (data shards first: the cheapest inverse)."""
        excluded = set(wanted)
        available = [i for i in sorted(shards) if i not in excluded]
        if len(available) < self.k:
            raise InsufficientShards(len(available), self.k)
        return tuple(available[: self.k])

    def _compute(
        self,
        shards: Mapping[int, BytesLike],
        inputs: tuple[int, ...],
        wanted: Sequence[int],
        outputs: Buffers,
    ) -> None:
        coefs = recovery_matrix(self.k, self.m, inputs, tuple(wanted))
        self.kernel.multiply(coefs, [_array(shards[i]) for i in inputs], outputs)
