"""The optional ``isal`` plugin: Intel ISA-L Reed-Solomon through pyeclib/liberasurecode.

Its code is NOT reedsolo's (ISA-L uses a different generator matrix), so shards written by
one plugin can only be read by the same plugin: a pool records its plugin name. The shards
are pyeclib's fragments verbatim, each with liberasurecode's 80-byte header (fragment
index, original object size, backend version) in front of the payload; that is why
:meth:`IsalCodec.shard_size` is not ``ceil(size / k)``. pyeclib trusts the index in the
header, not the key of the mapping it is given.

pyeclib is imported only when an ``isal`` codec is created, so the package works without
it. The ``isa_l_rs_vand`` matrix is not MDS for m >= 5 (some loss patterns of m shards are
unrecoverable; OpenStack Swift refuses it, and ``tests/ec/test_ec_isal.py`` shows it for
6+6), so this plugin allows m <= 4 and liberasurecode's k + m <= 32.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agent.ec.base import BytesLike, Shard, check_indexes, check_params, check_shards
from agent.ec.errors import ECError, InsufficientShards, PluginUnavailable, SizeMismatch

__all__ = ["IsalCodec"]

MAX_SHARDS = 32
MAX_PARITY = 4


def _driver(k: int, m: int, ec_type: str) -> Any:
    try:
        from pyeclib.ec_iface import ECDriver  # noqa: PLC0415 - optional, imported lazily
    except ImportError as exc:
        raise PluginUnavailable("isal", f"pyeclib cannot be imported ({exc})") from exc
    try:
        return ECDriver(k=k, m=m, ec_type=ec_type)
    except Exception as exc:  # pyeclib raises its own ECDriverError tree and ValueError
        raise PluginUnavailable("isal", f"{ec_type} cannot be loaded ({exc})") from exc


def _failed(action: str, exc: Exception) -> ECError:
    return ECError(
        f"ISA-L could not {action} the shards, which may be damaged or not ISA-L fragments "
        f"({type(exc).__name__})"
    )


@dataclass(frozen=True)
class IsalCodec:
    """ISA-L Vandermonde Reed-Solomon; shards are pyeclib fragments (header + payload)."""

    EC_TYPE: ClassVar[str] = "isa_l_rs_vand"

    k: int
    m: int
    plugin: str = field(default="isal", init=False)
    _driver: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_params(self.k, self.m, max_n=MAX_SHARDS, max_m=MAX_PARITY)
        object.__setattr__(self, "_driver", _driver(self.k, self.m, self.EC_TYPE))

    @property
    def n(self) -> int:
        """Total shards, k + m."""
        return self.k + self.m

    def shard_size(self, size: int) -> int:
        """Fragment length for ``size`` bytes, header included (pyeclib's own arithmetic)."""
        if size == 0:  # get_segment_info reports one byte too many for empty objects
            return len(self._driver.encode(b"")[0])
        info = self._driver.get_segment_info(size, size)
        return int(info["fragment_size"])

    def encode(self, data: BytesLike) -> list[Shard]:
        """Return pyeclib's k + m fragments for ``data``, in index order."""
        try:
            fragments: list[Shard] = self._driver.encode(bytes(data))
        except Exception as exc:
            raise _failed("encode", exc) from exc
        return fragments

    def decode(self, shards: Mapping[int, BytesLike], size: int) -> bytes:
        """Rebuild the object; ``size`` is checked against the size in the fragment headers."""
        check_shards(shards, self.n)
        if len(shards) < self.k:
            raise InsufficientShards(len(shards), self.k)
        try:
            data: bytes = self._driver.decode([bytes(shards[i]) for i in sorted(shards)])
        except Exception as exc:
            raise _failed("decode", exc) from exc
        if not 0 <= size <= len(data):
            raise SizeMismatch(size, len(data))
        return data if size == len(data) else data[:size]

    def decode_parts(self, shards: Mapping[int, BytesLike], size: int) -> list[Shard]:
        """pyeclib returns the object in one buffer, so that is the only part."""
        return [self.decode(shards, size)]

    def rebuild(self, shards: Mapping[int, BytesLike], missing: Iterable[int]) -> dict[int, Shard]:
        """Recompute the ``missing`` fragments from k of the others (never from themselves)."""
        wanted = check_indexes(missing, self.n)
        check_shards(shards, self.n)
        if not wanted:
            return {}
        available = [i for i in sorted(shards) if i not in set(wanted)]
        if len(available) < self.k:
            raise InsufficientShards(len(available), self.k)
        try:
            out: list[Shard] = self._driver.reconstruct(
                [bytes(shards[i]) for i in available], list(wanted)
            )
        except Exception as exc:
            raise _failed("rebuild", exc) from exc
        return dict(zip(wanted, out, strict=True))
