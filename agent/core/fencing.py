"""The fencing token check an OSD makes on every write that carries one (pure).

A container's generation is bumped by every reassignment, so an instance that carries an
older generation than the map holds, or than this OSD has already seen, is stale: a newer
instance runs elsewhere. Its writes are refused, so even a stale instance that could not
be stopped in time cannot overwrite what the new one wrote.
"""

from __future__ import annotations

from agent.clustermap import ClusterMap
from agent.wire import Fence


class FenceBook:
    """The newest generation this OSD has seen of each container."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def check(self, fence: Fence | None, cmap: ClusterMap | None) -> str | None:
        """None if the write may go on (and remember its generation), else why not."""
        if fence is None:
            return None
        info = cmap.containers.get(fence.container) if cmap is not None else None
        in_map = info.generation if info is not None else 0
        seen = self.seen.get(fence.container, 0)
        newest = max(in_map, seen)
        if fence.generation < newest:
            where = "the map holds" if in_map >= seen else "this OSD has seen"
            return (
                f"container {fence.container!r} writes as generation {fence.generation}, but "
                f"{where} generation {newest}: a newer instance runs, so the write is refused"
            )
        self.seen[fence.container] = max(seen, fence.generation)
        return None
