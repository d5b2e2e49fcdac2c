"""Erasure coding for Rackcloud: split an object into k data + m parity shards.

A pure module (no I/O): callers hand it bytes and get bytes back. ``codec(k, m)`` returns
the reedsolo-compatible ``rs`` plugin; ``codec(k, m, plugin="isal")`` the optional ISA-L
one. The two codes differ, so a pool must record which plugin wrote its shards. See
``docs/ec.md``.
"""

from __future__ import annotations

from agent.ec.base import BytesLike, Codec
from agent.ec.errors import (
    ECError,
    InsufficientShards,
    InvalidParameters,
    PluginUnavailable,
    ShardIndexError,
    SizeMismatch,
    UnequalShards,
    UnknownPlugin,
)
from agent.ec.rs import ReedSolomon

__all__ = [
    "PLUGINS",
    "BytesLike",
    "Codec",
    "ECError",
    "InsufficientShards",
    "InvalidParameters",
    "PluginUnavailable",
    "ReedSolomon",
    "ShardIndexError",
    "SizeMismatch",
    "UnequalShards",
    "UnknownPlugin",
    "codec",
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
