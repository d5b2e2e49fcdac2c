"""The failure-domain tree: root -> rack -> host -> osd, built from plain frozen data.

The cluster map hands placement a flat list of :class:`Osd` records; the tree is derived
from the ``host`` and ``rack`` names on them, so there is no second structure to keep in
sync. Weights are bytes of capacity: a bucket weighs what its OSDs weigh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from agent.placement.errors import PlacementError

__all__ = ["LEVELS", "Domain", "Level", "Osd", "OsdState", "Tree", "level_plural"]

Level = Literal["osd", "host", "rack"]
LEVELS: tuple[Level, ...] = ("osd", "host", "rack")


def level_plural(level: Level, count: int) -> str:
    """``"1 host"``, ``"6 hosts"``, ``"2 OSDs"``: for messages an operator reads."""
    word = "OSD" if level == "osd" else level
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class OsdState(StrEnum):
    """``down`` keeps the OSD's slots (data degraded, not moved); ``out`` gives them up."""

    UP = "up"
    DOWN = "down"
    OUT = "out"


_STATES = frozenset(OsdState)


@dataclass(frozen=True, slots=True)
class Osd:
    id: int
    host: str
    rack: str
    weight: int
    """Bytes of capacity; 0 keeps the OSD in the tree but gives it no data."""
    state: OsdState = OsdState.UP

    @property
    def usable(self) -> bool:
        """May hold shards: not marked out and has capacity."""
        return self.state != OsdState.OUT and self.weight > 0

    def domain(self, level: Level) -> str:
        """The name of the failure domain this OSD belongs to at ``level``."""
        if level == "osd":
            return f"osd.{self.id}"
        return self.host if level == "host" else self.rack


@dataclass(frozen=True, slots=True)
class Domain:
    """One bucket at a failure-domain level, with its OSDs sorted by id."""

    level: Level
    name: str
    osds: tuple[Osd, ...]

    @property
    def weight(self) -> int:
        return sum(o.weight for o in self.osds)

    @property
    def usable(self) -> bool:
        return any(o.usable for o in self.osds)


@dataclass(frozen=True, slots=True)
class Tree:
    """A validated set of OSDs, sorted by id; build it with :meth:`of`."""

    osds: tuple[Osd, ...]

    def __post_init__(self) -> None:
        racks: dict[str, str] = {}
        last = -1
        for o in self.osds:
            if not isinstance(o.id, int) or o.id < 0:
                raise PlacementError(f"OSD id {o.id!r} is not a non-negative integer")
            if o.id <= last:
                raise PlacementError(f"OSD {o.id} is listed twice or out of order")
            last = o.id
            if not isinstance(o.weight, int) or o.weight < 0:
                raise PlacementError(f"OSD {o.id} has weight {o.weight!r}, not bytes >= 0")
            if o.state not in _STATES:
                raise PlacementError(f"OSD {o.id} has state {o.state!r}, not up, down or out")
            if not o.host or not o.rack:
                raise PlacementError(f"OSD {o.id} has an empty host or rack name")
            if racks.setdefault(o.host, o.rack) != o.rack:
                raise PlacementError(
                    f"host {o.host} is in two racks ({racks[o.host]} and {o.rack})"
                )

    @classmethod
    def of(cls, osds: Iterable[Osd]) -> Tree:
        """The tree of these OSDs, in any order."""
        return cls(tuple(sorted(osds, key=lambda o: o.id)))

    def domains(self, level: Level) -> tuple[Domain, ...]:
        """The buckets at ``level``, sorted by name (the order breaks exact ties only)."""
        groups: dict[str, list[Osd]] = {}
        for o in self.osds:
            groups.setdefault(o.domain(level), []).append(o)
        return tuple(Domain(level, name, tuple(groups[name])) for name in sorted(groups))

    def osd(self, osd_id: int) -> Osd:
        for o in self.osds:
            if o.id == osd_id:
                return o
        raise PlacementError(f"no OSD {osd_id} in the tree")

    def with_state(self, osd_id: int, state: OsdState) -> Tree:
        """The same tree with one OSD's state changed."""
        self.osd(osd_id)
        return Tree(tuple(replace(o, state=state) if o.id == osd_id else o for o in self.osds))

    def with_osds(self, osds: Iterable[Osd]) -> Tree:
        """The same tree with more OSDs (e.g. a new host)."""
        return Tree.of((*self.osds, *osds))
