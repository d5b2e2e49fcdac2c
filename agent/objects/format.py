"""The on-disk records of an OSD, as frozen structs: the contract of docs/storage-format.md.

Pure data, no I/O. A shard file starts with a :class:`ShardHeader`; the metadata journal
holds :class:`ObjectMeta` records. Both carry ``format``, and a reader refuses a format it
does not know instead of guessing. The same structs travel in data-plane headers, so a
shard's identity is spelled the same way on the wire and on the disk.
"""

from __future__ import annotations

import hashlib
from typing import Final

import msgspec

FORMAT: Final = 1
"""The one layout version this code writes and reads."""
BLOCK_SIZE: Final = 64 * 1024
"""Shard bytes are checksummed per block of this size (the last block may be shorter)."""
CHECKSUM: Final = "xxh3-64"


class Version(msgspec.Struct, frozen=True, order=True, array_like=True):
    """A total order on the versions of one name: ``(ts, writer)``, compared as a tuple.

    ``ts`` is nanoseconds, at least one more than any version the writer saw in the
    object's metadata set, so a put that starts after another finished sorts after it;
    ``writer`` is a random 63-bit number that breaks ties between concurrent writers the
    same way on every node.
    """

    ts: int
    writer: int

    def hex(self) -> str:
        return f"{self.ts:016x}{self.writer:016x}"


NO_VERSION: Final = Version(0, 0)


class ShardId(msgspec.Struct, frozen=True, array_like=True):
    """Which shard: of which version of which object, which chunk and which position."""

    pool: int
    pg: int
    object: str
    version: Version
    chunk: int
    position: int

    def file_name(self) -> str:
        """``<name hash>.<version>.<chunk>.<position>``: the name is a key, never a path."""
        stem = name_hash(self.pool, self.object)
        return f"{stem}.{self.version.hex()}.{self.chunk}.{self.position}"

    def dir_name(self) -> str:
        return f"{self.pool}.{self.pg:x}"


class ShardHeader(msgspec.Struct, frozen=True, kw_only=True):
    """What a shard file says about itself; checked against the request on every read."""

    format: int = FORMAT
    id: ShardId
    k: int
    m: int
    plugin: str
    chunk_len: int
    """Bytes of object data in the chunk this shard belongs to."""
    shard_len: int
    """Bytes of shard data in this file (every shard of a chunk has the same length)."""
    block_size: int = BLOCK_SIZE
    checksum: str = CHECKSUM
    written_at: float = 0.0
    """Writer's wall clock, for people and for the collector's grace period."""


class ChunkRef(msgspec.Struct, frozen=True, array_like=True):
    """One chunk of an object: its length, where its shards went, which are missing."""

    index: int
    length: int
    shard_len: int
    pg: int
    osds: tuple[int, ...]
    """The OSD of each position when it was written (k data, then m parity)."""
    missing: tuple[int, ...]
    """Positions not written because their OSD was down or failed (recovery completes them)."""
    checksum: int
    """xxh3-64 of the chunk's data: a read is checked end to end before it is returned."""


class ObjectMeta(msgspec.Struct, frozen=True, kw_only=True):
    """One version of an object; every OSD of its metadata set keeps the newest it saw.

    A deletion is a version too (``deleted``), so a late copy of an older version can
    never bring a removed object back. Small objects are ``inline``: their bytes live in
    this record on every OSD of the set, and there are no chunks.
    """

    format: int = FORMAT
    pool: int
    name: str
    version: Version
    deleted: bool = False
    size: int = 0
    k: int = 0
    m: int = 0
    plugin: str = "rs"
    chunk_size: int = 0
    written_at: float = 0.0
    inline: bytes | None = None
    chunks: tuple[ChunkRef, ...] = ()
    checksum: int = 0
    """xxh3-64 of the whole object's bytes."""


def name_hash(pool: int, name: str) -> str:
    """32 hex digits naming an object on disk; the header holds the real name."""
    digest = hashlib.blake2b(f"{pool}\0{name}".encode(), digest_size=16)
    return digest.hexdigest()
