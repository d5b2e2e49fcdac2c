"""An OSD's disk store: shard files, the object-metadata journal and the disk's identity.

Synchronous I/O, called from worker threads. The bytes on disk are specified in
docs/storage-format.md; the structs are in :mod:`agent.objects.format`.
"""

from __future__ import annotations

from agent.objects.format import (
    BLOCK_SIZE,
    CHECKSUM,
    FORMAT,
    NO_VERSION,
    ChunkRef,
    ObjectMeta,
    ShardHeader,
    ShardId,
    Version,
)
from agent.store.errors import (
    BadShard,
    CorruptJournal,
    CorruptShard,
    DiskFull,
    DiskIOError,
    ForeignDisk,
    ShardNotFound,
    StoreError,
    UnknownFormat,
)
from agent.store.identity import DiskIdentity, claim
from agent.store.journal import MetaJournal
from agent.store.shards import ShardStore

__all__ = [
    "BLOCK_SIZE",
    "CHECKSUM",
    "FORMAT",
    "NO_VERSION",
    "BadShard",
    "ChunkRef",
    "CorruptJournal",
    "CorruptShard",
    "DiskFull",
    "DiskIOError",
    "DiskIdentity",
    "ForeignDisk",
    "MetaJournal",
    "ObjectMeta",
    "ShardHeader",
    "ShardId",
    "ShardNotFound",
    "ShardStore",
    "StoreError",
    "UnknownFormat",
    "Version",
    "claim",
]
