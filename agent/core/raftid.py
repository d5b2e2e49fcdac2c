"""Raft ids of monitors: a stable hash of the node name, so no id table is distributed."""

from __future__ import annotations

import hashlib


def raft_id(name: str) -> int:
    """A stable, positive 63-bit Raft id for a node name, the same on every node and run."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") >> 1 or 1
