"""Placement: which OSDs hold each shard. Pure and deterministic, no I/O.

An object chunk hashes to a placement group (:func:`object_pg`); a placement group maps
to ``k+m`` OSDs in distinct failure domains by straw2 (:func:`place`), adjusted by the
balancer's upmap items (:func:`balance`). The same map gives the same answer on every
node and in every run. See docs/placement.md.
"""

from agent.placement.balancer import balance, max_over_mean
from agent.placement.crush import Placement, place, place_pg
from agent.placement.errors import PlacementError
from agent.placement.hashing import object_pg, stable_hash64
from agent.placement.pool import PoolSpec, Upmap
from agent.placement.tree import LEVELS, Domain, Level, Osd, OsdState, Tree

__all__ = [
    "LEVELS",
    "Domain",
    "Level",
    "Osd",
    "OsdState",
    "Placement",
    "PlacementError",
    "PoolSpec",
    "Tree",
    "Upmap",
    "balance",
    "max_over_mean",
    "object_pg",
    "place",
    "place_pg",
    "stable_hash64",
]
