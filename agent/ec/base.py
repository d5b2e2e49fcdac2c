"""The interface every erasure-code plugin offers, and the argument checks they share.

Plugins differ in their code (``rs`` is reedsolo's Reed-Solomon code, ``isal`` is
ISA-L's), never in their API, so the store and recovery code is written once against
:class:`Codec`. The checks live here so every plugin rejects bad input with the same
named errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeAlias, runtime_checkable

from agent.ec.errors import (
    InvalidParameters,
    ShardIndexError,
    UnequalShards,
)

__all__ = [
    "MAX_SHARDS",
    "BytesLike",
    "Codec",
    "Shard",
    "check_indexes",
    "check_params",
    "check_shards",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""What the codecs accept as data or shards (anything with a flat byte buffer)."""

Shard: TypeAlias = bytes | memoryview
"""What the codecs return: immutable bytes, or a read-only view (no copy was made)."""

MAX_SHARDS = 255
"""k + m may not exceed the length of a GF(2^8) Reed-Solomon codeword."""


@runtime_checkable
class Codec(Protocol):
    """An erasure code: k data shards plus m parity shards, any k of them rebuild the rest.

    Shard ``i`` for ``i < k`` is data, ``k <= i < k + m`` is parity. All shards of one
    object have the same length (:meth:`shard_size`).
    """

    @property
    def k(self) -> int:
        """Number of data shards."""
        ...

    @property
    def m(self) -> int:
        """Number of parity shards (how many lost shards are survivable)."""
        ...

    @property
    def plugin(self) -> str:
        """Name of the code; a pool must record it, codes of different plugins differ."""
        ...

    def shard_size(self, size: int) -> int:
        """Length of every shard of an object of ``size`` bytes."""
        ...

    def encode(self, data: BytesLike) -> list[Shard]:
        """Return the k data shards then the m parity shards of ``data``."""
        ...

    def decode(self, shards: Mapping[int, BytesLike], size: int) -> Shard:
        """Rebuild the ``size``-byte object from any k shards, keyed by shard index."""
        ...

    def decode_parts(self, shards: Mapping[int, BytesLike], size: int) -> list[Shard]:
        """The object as buffers in order, copying nothing it need not; joined: :meth:`decode`."""
        ...

    def rebuild(self, shards: Mapping[int, BytesLike], missing: Iterable[int]) -> dict[int, Shard]:
        """Recompute the shards listed in ``missing`` from k of the others."""
        ...


def check_params(
    k: object, m: object, *, max_n: int = MAX_SHARDS, max_m: int | None = None
) -> None:
    """Raise :class:`InvalidParameters` unless ``2 <= k``, ``1 <= m``, ``k + m <= max_n``."""
    if type(k) is not int or type(m) is not int:
        raise InvalidParameters(k, m, "k and m must be whole numbers")
    if k < 2:
        raise InvalidParameters(k, m, "k must be at least 2")
    if m < 1:
        raise InvalidParameters(k, m, "m must be at least 1")
    if k + m > max_n:
        raise InvalidParameters(k, m, f"k + m must be at most {max_n}")
    if max_m is not None and m > max_m:
        raise InvalidParameters(k, m, f"m must be at most {max_m} for this plugin")


def check_indexes(indexes: Iterable[object], n: int) -> list[int]:
    """Return the indexes sorted and de-duplicated; raise :class:`ShardIndexError` if any is bad."""
    seen: set[int] = set()
    for index in indexes:
        if type(index) is not int or not 0 <= index < n:
            raise ShardIndexError(index, n)
        seen.add(index)
    return sorted(seen)


def check_shards(shards: Mapping[int, BytesLike], n: int) -> int:
    """Validate indexes and lengths; return the common shard length (0 when empty)."""
    check_indexes(shards.keys(), n)
    lengths = {memoryview(shard).nbytes for shard in shards.values()}
    if len(lengths) > 1:
        raise UnequalShards(memoryview(shard).nbytes for shard in shards.values())
    return lengths.pop() if lengths else 0
