"""Map acceptance: which cluster maps a node takes into its cache.

A map is taken only from a monitor (a published ``map`` update on that monitor's own
subscription, or the reply of a monitor we asked), only for our cluster, and only if it
is newer than the one we hold. Anything else is stale (silently ignored) or refused
(ignored with a log line naming the reason).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.clustermap import ClusterMap


@dataclass(frozen=True, slots=True)
class Take:
    """Replace the cached map by this one."""


@dataclass(frozen=True, slots=True)
class Stale:
    """Not newer than ours: nothing to do (maps are published on every epoch)."""


@dataclass(frozen=True, slots=True)
class RefuseMap:
    reason: str


Verdict = Take | Stale | RefuseMap


def judge_map(
    candidate: ClusterMap, *, cluster: str, have_epoch: int, source: str, from_monitor: bool
) -> Verdict:
    if not from_monitor:
        return RefuseMap(f"maps are taken only from monitors, and {source} is not one")
    if candidate.cluster != cluster:
        return RefuseMap(f"{source} sent a map of cluster {candidate.cluster}, not {cluster}")
    if candidate.epoch <= have_epoch:
        return Stale()
    return Take()
