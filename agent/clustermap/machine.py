"""The cluster map as Raft's replicated state machine (the driver's ``StateMachine``).

Committed entries come in log order; commands are decoded and applied with the total
:func:`~agent.clustermap.apply`, so every monitor computes the same map. An entry that
does not decode is applied as a refusal (it changes nothing), never as a crash.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from agent.clustermap.apply import Applied, apply
from agent.clustermap.commands import Command, decode_command
from agent.clustermap.model import ClusterMap, decode_map, encode_map
from agent.raft.messages import Entry, EntryKind, Snapshot

OnApplied = Callable[[Entry, Command | None, Applied], None]


class MapMachine:
    def __init__(self, cluster: str, on_applied: OnApplied | None = None) -> None:
        self.cluster = cluster
        self.cmap = ClusterMap(cluster=cluster)
        self.applied_index = 0
        self._on_applied = on_applied

    def apply(self, entry: Entry) -> None:
        self.applied_index = entry.index
        if entry.kind != EntryKind.NORMAL or not entry.data:
            return
        cmd: Command | None
        try:
            cmd = decode_command(entry.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            cmd, result = None, Applied(self.cmap, f"entry {entry.index} does not decode: {exc}")
        else:
            result = apply(self.cmap, cmd)
            self.cmap = result.cmap
        if self._on_applied is not None:
            self._on_applied(entry, cmd, result)

    def restore(self, snapshot: Snapshot) -> None:
        self.cmap = decode_map(snapshot.data) if snapshot.data else ClusterMap(cluster=self.cluster)
        self.applied_index = snapshot.index

    def snapshot(self) -> bytes:
        return encode_map(self.cmap)
