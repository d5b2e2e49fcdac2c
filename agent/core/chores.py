"""The leader's chores: which map changes to propose now, each once while it is in flight.

The leader hears nodes and disks the map lacks (:func:`~agent.core.heard.heard`,
:func:`~agent.clustermap.membership_changes`) and the vote decides state changes
(:class:`~agent.core.vote.VoteTally`); both are proposed without waiting. A change is
not proposed again while an identical one is in flight (until it commits, or for
``inflight_s``), so a slow commit does not fill the log with copies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from agent.clustermap import (
    AddNode,
    AddOsd,
    ClusterMap,
    Command,
    NodeChange,
    SetNodeStates,
    encode_command,
    membership_changes,
    osd_state_changes,
)

INFLIGHT_S = 2.0
"""How long a proposed change is assumed to be on its way before it may be proposed again."""


def change_key(cmd: Command) -> bytes:
    """What makes two proposals the same change (the vote's timestamp does not)."""
    if isinstance(cmd, SetNodeStates):
        return b"states:" + msgspec.msgpack.encode(cmd.changes)
    return encode_command(cmd)


class Chores:
    def __init__(self, inflight_s: float = INFLIGHT_S) -> None:
        self.inflight_s = inflight_s
        self._inflight: dict[bytes, float] = {}

    def due(
        self,
        cmap: ClusterMap,
        heard_nodes: list[AddNode],
        heard_osds: list[AddOsd],
        decided: list[NodeChange],
        *,
        now: float,
        wall: float,
        disks: Mapping[tuple[str, str], bool] | None = None,
        planned: Sequence[Command] = (),
    ) -> list[Command]:
        """The changes to propose at ``now`` (monotonic); ``wall`` stamps the vote's changes;
        ``disks`` is what nodes say of their disks (a refused disk's OSD goes down);
        ``planned`` are other services' changes (container placements)."""
        self._inflight = {k: t for k, t in self._inflight.items() if t > now}
        wanted = membership_changes(cmap, heard_nodes, heard_osds)
        wanted += osd_state_changes(cmap, disks or {})
        if decided:
            wanted.append(SetNodeStates(changes=tuple(decided), at=wall))
        wanted += planned
        out = []
        for cmd in wanted:
            key = change_key(cmd)
            if key not in self._inflight:
                self._inflight[key] = now + self.inflight_s
                out.append(cmd)
        return out

    def settled(self, cmd: Command) -> None:
        """The change committed, or its proposal failed: it may be proposed again."""
        self._inflight.pop(change_key(cmd), None)
