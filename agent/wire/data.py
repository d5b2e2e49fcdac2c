"""Messages of the data plane: shard and metadata requests to an OSD's data port.

They travel as ``[b"RD1", header, *payload]`` on their own ROUTER (docs/objects.md), so
a large transfer never queues ahead of Raft, heartbeats or status. The header is a small
msgpack struct; shard bytes and metadata records are payload frames, never copied into
msgpack. Every request names the OSD it is for (a node serves one OSD per disk).
"""

from __future__ import annotations

import msgspec

from agent.objects.format import ShardHeader, ShardId, Version
from agent.wire.base import Msg


class Fence(msgspec.Struct, frozen=True, array_like=True):
    """The writer's fencing token: a container's name and generation (the HA issue fills
    it in; an OSD refuses a write whose generation is older than it has seen)."""

    container: str
    generation: int


class ShardPut(Msg, frozen=True, kw_only=True, tag="shard_put"):
    """Store one shard durably (payload: its bytes); answered once fsync'd."""

    rid: int
    osd: int
    header: ShardHeader
    fence: Fence | None = None


class ShardPutReply(Msg, frozen=True, kw_only=True, tag="shard_put_reply"):
    rid: int


class ShardGet(Msg, frozen=True, kw_only=True, tag="shard_get"):
    rid: int
    osd: int
    id: ShardId


class ShardGetReply(Msg, frozen=True, kw_only=True, tag="shard_get_reply"):
    """The shard's header; payload: its bytes, every block checksum verified."""

    rid: int
    header: ShardHeader


class ShardDelete(Msg, frozen=True, kw_only=True, tag="shard_delete"):
    rid: int
    osd: int
    ids: tuple[ShardId, ...]


class ShardDeleteReply(Msg, frozen=True, kw_only=True, tag="shard_delete_reply"):
    rid: int
    deleted: int


class MetaPut(Msg, frozen=True, kw_only=True, tag="meta_put"):
    """Keep this object version if it is newer (payload: the msgpack ``ObjectMeta``)."""

    rid: int
    osd: int
    fence: Fence | None = None


class MetaPutReply(Msg, frozen=True, kw_only=True, tag="meta_put_reply"):
    """Answered once durable; ``current`` is the newest version the OSD now holds."""

    rid: int
    applied: bool
    current: Version


class MetaGet(Msg, frozen=True, kw_only=True, tag="meta_get"):
    rid: int
    osd: int
    pool: int
    name: str


class MetaGetReply(Msg, frozen=True, kw_only=True, tag="meta_get_reply"):
    """Payload: the newest ``ObjectMeta`` the OSD holds for the name, or none."""

    rid: int
    found: bool


class ListEntry(msgspec.Struct, frozen=True, array_like=True):
    name: str
    version: Version
    deleted: bool
    size: int
    written_at: float


class MetaList(Msg, frozen=True, kw_only=True, tag="meta_list"):
    """Names of a pool held by this OSD, in order, after ``after``, at most ``limit``."""

    rid: int
    osd: int
    pool: int
    prefix: str = ""
    after: str = ""
    limit: int = 1000


class MetaListReply(Msg, frozen=True, kw_only=True, tag="meta_list_reply"):
    """Payload: a msgpack list of :class:`ListEntry`; ``more`` if the limit cut it."""

    rid: int
    more: bool
