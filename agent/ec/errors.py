"""Named errors of the erasure codec.

Every error derives from :class:`agent.errors.RackError` so the CLI prints ``str(err)`` as
one plain sentence; the attributes carry the numbers for code that wants to react (for
example recovery waiting for more shards on :class:`InsufficientShards`).
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.errors import RackError

__all__ = [
    "ECError",
    "InsufficientShards",
    "InvalidBuffers",
    "InvalidParameters",
    "PluginUnavailable",
    "ShardIndexError",
    "SizeMismatch",
    "UnequalShards",
    "UnknownPlugin",
]


class ECError(RackError):
    """Base of every erasure-codec error."""


class InvalidParameters(ECError):
    """k or m is outside what the plugin supports."""

    def __init__(self, k: object, m: object, rule: str) -> None:
        super().__init__(f"erasure code {k}+{m} is not supported: {rule}")
        self.k = k
        self.m = m


class UnknownPlugin(ECError):
    """No erasure-code plugin has this name."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        choices = ", ".join(sorted(known))
        super().__init__(f"unknown erasure-code plugin {name!r}; choose one of: {choices}")
        self.name = name


class PluginUnavailable(ECError):
    """The plugin exists but its optional library cannot be loaded on this host."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"erasure-code plugin {name!r} is not available on this host: {reason}")
        self.name = name


class InsufficientShards(ECError):
    """Fewer than k usable shards: the data cannot be rebuilt (yet)."""

    def __init__(self, have: int, need: int) -> None:
        super().__init__(
            f"only {have} usable shard(s) are available but {need} are needed to rebuild the data"
        )
        self.have = have
        self.need = need


class ShardIndexError(ECError):
    """A shard index is not in ``range(k + m)``."""

    def __init__(self, index: object, n: int) -> None:
        super().__init__(f"shard index {index!r} is out of range; valid indexes are 0 to {n - 1}")
        self.index = index
        self.n = n


class UnequalShards(ECError):
    """Shards of one object must all have the same length."""

    def __init__(self, lengths: Iterable[int]) -> None:
        seen = sorted(set(lengths))
        super().__init__(
            f"shards of one object must have equal lengths, but lengths {seen} were given"
        )
        self.lengths = seen


class SizeMismatch(ECError):
    """The object size does not fit the shards that were given."""

    def __init__(self, size: int, capacity: int) -> None:
        super().__init__(
            f"an object of {size} bytes cannot come from these shards, which hold at most "
            f"{capacity} bytes"
        )
        self.size = size
        self.capacity = capacity


class InvalidBuffers(ECError):
    """A kernel was handed buffers it must not touch; always a bug in the caller."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"erasure-code kernel refused its buffers: {problem}")
        self.problem = problem
