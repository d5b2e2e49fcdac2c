"""What placement needs to know about a pool, and the balancer's exceptions to it.

Both are plain frozen data so the cluster map can store and ship them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.placement.errors import PlacementError
from agent.placement.tree import LEVELS, Level

__all__ = ["PoolSpec", "Upmap"]


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """An erasure-coded pool: ``k`` data + ``m`` parity shards per object chunk, spread
    over ``pg_count`` placement groups, at most one shard per ``domain`` bucket."""

    id: int
    k: int
    m: int
    pg_count: int
    domain: Level = "host"

    def __post_init__(self) -> None:
        if self.k < 1 or self.m < 0:
            raise PlacementError(f"pool {self.id}: {self.k}+{self.m} is not a valid code")
        if self.pg_count < 1:
            raise PlacementError(f"pool {self.id}: pg_count must be at least 1")
        if self.domain not in LEVELS:
            raise PlacementError(
                f"pool {self.id}: failure domain {self.domain!r} is not one of {LEVELS}"
            )

    @property
    def size(self) -> int:
        """Shards per placement group: positions 0..k-1 hold data, k..k+m-1 parity."""
        return self.k + self.m


@dataclass(frozen=True, slots=True, order=True)
class Upmap:
    """Put shard ``position`` of placement group ``pg`` of pool ``pool`` on ``osd``,
    instead of where straw2 put it. Ignored while it would break a rule (see
    :func:`agent.placement.crush.place`)."""

    pool: int
    pg: int
    position: int
    osd: int
