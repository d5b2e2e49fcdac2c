"""The collector's rule: which shard no object version needs any more. Pure.

A shard of the current version stays. A shard of an older version (replaced, or removed
by a deletion) goes once the newer version is ``gc_superseded_after`` old, so a reader
of the old version has that long to finish. A shard that no committed version names
(its put failed, or its writer died) goes once it is ``gc_orphan_after`` old, which must
exceed the longest put: until its metadata commits, a put in progress looks the same.
"""

from __future__ import annotations

from typing import Protocol

from agent.objects.format import ObjectMeta, ShardHeader


class Graces(Protocol):
    @property
    def gc_superseded_after(self) -> float: ...

    @property
    def gc_orphan_after(self) -> float: ...


def verdict(
    shard: ShardHeader,
    mtime: float,
    current: ObjectMeta | None,
    now: float,
    graces: Graces,
    *,
    pool_known: bool = True,
) -> str | None:
    """Why ``shard`` can be deleted now, or None to keep it (wall-clock seconds)."""
    version = shard.id.version
    if current is not None and version == current.version and not current.deleted:
        return None
    if current is not None and version <= current.version:
        if now - current.written_at < graces.gc_superseded_after:
            return None
        return "its object was removed" if current.deleted else "a newer version replaced it"
    if now - mtime < graces.gc_orphan_after:
        return None
    if not pool_known:
        return "its pool was deleted"
    return "no committed version names it (a failed or interrupted put)"
