"""The one error placement raises, so the CLI can print it as a plain sentence."""

from __future__ import annotations

from agent.errors import RackError


class PlacementError(RackError):
    """The tree or the pool cannot give every shard a failure domain of its own."""
