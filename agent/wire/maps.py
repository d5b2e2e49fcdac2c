"""Messages of the map cache: fetching the cluster map and the monitors' ``map`` topic."""

from __future__ import annotations

from typing import Final

from agent.wire.base import Msg

MAP_TOPIC: Final = b"map"


class MapRequest(Msg, frozen=True, kw_only=True, tag="map_request"):
    rid: int
    have_epoch: int = 0


class MapReply(Msg, frozen=True, kw_only=True, tag="map_reply"):
    """The cluster map (payload frame: msgpack-encoded map), or ``epoch`` alone if not newer."""

    rid: int
    epoch: int


class MapUpdate(Msg, frozen=True, kw_only=True, tag="map_update"):
    """Published by monitors on topic ``map`` after each new epoch; payload: the map."""

    cluster: str
    epoch: int
    leader: str | None = None
    term: int = 0
