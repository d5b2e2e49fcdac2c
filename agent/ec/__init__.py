"""Erasure coding for Rackcloud: split an object into k data + m parity shards.

A pure module (no I/O): callers hand it bytes and get bytes or read-only views back.
``codec(k, m)`` returns the reedsolo-compatible ``rs`` plugin, computed by ISA-L's SIMD
kernel once the process's entry point installed it (``agent.ec.isal_lib.install``, the
package's one impure module) and by numpy otherwise; the shards are the same.
``codec(k, m, plugin="isal")`` is pyeclib's own ISA-L code, a different one, so a pool
must record which plugin wrote its shards. See ``docs/ec.md``.
"""

from __future__ import annotations

from agent.ec.base import BytesLike, Codec, Shard
from agent.ec.errors import (
    ECError,
    InsufficientShards,
    InvalidBuffers,
    InvalidParameters,
    PluginUnavailable,
    ShardIndexError,
    SizeMismatch,
    UnequalShards,
    UnknownPlugin,
)
from agent.ec.kernels import Kernel, KernelChoice, default_kernel
from agent.ec.rs import ReedSolomon

__all__ = [
    "PLUGINS",
    "BytesLike",
    "Codec",
    "ECError",
    "InsufficientShards",
    "InvalidBuffers",
    "InvalidParameters",
    "Kernel",
    "KernelChoice",
    "PluginUnavailable",
    "ReedSolomon",
    "Shard",
    "ShardIndexError",
    "SizeMismatch",
    "UnequalShards",
    "UnknownPlugin",
    "codec",
    "default_kernel",
]

PLUGINS = ("rs", "isal")
"""Known plugin names; ``rs`` is always available, ``isal`` needs pyeclib."""


def codec(k: int, m: int, plugin: str = "rs") -> Codec:
    """Return the codec for k data + m parity shards of the named plugin.

    Raises :class:`InvalidParameters`, :class:`UnknownPlugin` or, for ``isal`` without
    pyeclib, :class:`PluginUnavailable`.
    """
    if plugin == "rs":
        return ReedSolomon(k, m)
    if plugin == "isal":
        from agent.ec.isal import IsalCodec  # noqa: PLC0415 - keeps pyeclib optional

        return IsalCodec(k, m)
    raise UnknownPlugin(plugin, PLUGINS)
