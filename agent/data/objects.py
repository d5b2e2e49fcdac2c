"""The client data path: put, get, stat, ls and rm of objects in a pool.

Used by the CLI, and later by the S3 gateway and FUSE mounts. It computes placement from
the cluster map and talks to the OSDs directly, in parallel. A put streams its input
chunk by chunk (``window`` chunks in flight), so memory stays bounded for any size;
it becomes visible only when its metadata reaches a write quorum, after every chunk
did. See docs/objects.md for the guarantees and their reasons.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import msgspec
import xxhash

from agent.clustermap.model import ClusterMap
from agent.data.chunks import Bytes, ChunkIO, Damage
from agent.data.link import DataLink
from agent.data.meta import META_TIMEOUT_S, MetaSet
from agent.ec import codec
from agent.errors import DataCorrupt, NotEnoughShards, NotFound, RackError
from agent.names import check_object_name
from agent.objects.format import ChunkRef, ObjectMeta, Version
from agent.objects.layout import CHUNK_SIZE, INLINE_MAX, PoolLayout, next_version, write_quorum
from agent.wire import Fence, ListEntry, MetaList, MetaListReply

log = logging.getLogger("agent.data")

WINDOW = 4
INLINE_TRIES = 5
"""Chunks in flight per put or get: enough to keep every OSD busy, memory bounded."""
LIST_PAGE = 1000
_decode_entries = msgspec.msgpack.Decoder(list[ListEntry]).decode

Progress = Callable[[int], None]
Sink = Callable[[Bytes], object]
"""Takes each chunk's bytes in order; may return an awaitable (awaited before the next)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """What a put made: the version, and how many shards it could not write yet."""

    pool: str
    name: str
    version: Version
    size: int
    chunks: int
    missing_shards: int
    inline: bool


def _no_progress(_: int) -> None:
    pass


class ObjectClient:
    def __init__(
        self,
        link: DataLink,
        cmap: Callable[[], ClusterMap],
        *,
        on_damage: Callable[[str], None] = log.warning,
        chunk_size: int = CHUNK_SIZE,
        window: int = WINDOW,
        wall_ns: Callable[[], int] = time.time_ns,
        fence: Fence | None = None,
    ) -> None:
        """``fence`` is a container's token, carried by every write so the OSDs refuse
        the writes of a stale instance (docs/ha.md)."""
        self.link = link
        self.fence = fence
        self.cmap = cmap
        self.on_damage = on_damage
        self.chunk_size = chunk_size
        self.window = window
        self.wall_ns = wall_ns
        self.rng = random.Random()
        self._layouts: dict[str, PoolLayout] = {}

    def _layout(self, pool: str) -> PoolLayout:
        """The pool's placement in the current map, computed once per map and pool."""
        cmap = self.cmap()
        cached = self._layouts.get(pool)
        if cached is None or cached.cmap is not cmap:
            cached = self._layouts[pool] = PoolLayout.of(cmap, pool)
        return cached

    def _chunks(self, layout: PoolLayout, name: str, version: Version) -> ChunkIO:
        pool = layout.pool

        def damaged(d: Damage) -> None:
            self.on_damage(
                f"shard {d.position} of chunk {d.chunk} of {pool.name}/{name} on osd.{d.osd} "
                f"is damaged ({d.why}); reading the other shards instead"
            )

        return ChunkIO(
            self.link,
            layout,
            codec(pool.k, pool.m, pool.plugin),
            name,
            version,
            wall=lambda: self.wall_ns() / 1e9,
            on_damage=damaged,
            fence=self.fence,
        )

    # ---- put ---------------------------------------------------------------------------

    async def put(
        self, pool: str, name: str, src: BinaryIO, progress: Progress = _no_progress
    ) -> Stored:
        """Store ``src`` (read to its end) as ``pool/name``; visible only when complete."""
        check_object_name(name)
        layout = self._layout(pool)
        meta_set = MetaSet(self.link, layout, name, self.fence)
        first = await _read(src, INLINE_MAX + 1)
        if len(first) <= INLINE_MAX:
            return await self._put_inline(meta_set, pool, name, bytes(first), progress)
        seen = await meta_set.read(repair=False)
        version = next_version(seen.seen, self.wall_ns(), self.rng.getrandbits(63))
        io = self._chunks(layout, name, version)
        refs, size, checksum = await self._write_chunks(io, src, first, progress)
        meta = _version_of(
            layout,
            name,
            version,
            size=size,
            chunk_size=self.chunk_size,
            chunks=tuple(refs),
            checksum=checksum,
        )
        await meta_set.write(meta)
        missing = sum(len(r.missing) for r in refs)
        return Stored(pool, name, version, size, len(refs), missing, inline=False)

    async def _put_inline(
        self, meta_set: MetaSet, pool: str, name: str, data: bytes, progress: Progress
    ) -> Stored:
        """A small object: one metadata write, no read first (docs/objects.md).

        Its version comes from this client's clock. An OSD that holds a newer version
        does not take it and says so; then the put is retried just above that version.
        Any acknowledged version is on ``k+1`` OSDs, and so is this one, so one of them
        answers (when ``2(k+1) > k+m``; otherwise the version is read first): a put never
        acknowledges a version older than one acknowledged before.
        """
        info = meta_set.layout.pool
        after: list[Version] = []
        if 2 * write_quorum(info.k, info.m) <= info.k + info.m:  # two writes might not meet
            after = list((await meta_set.read(repair=False)).seen)
        for _ in range(INLINE_TRIES):
            version = next_version(after, self.wall_ns(), self.rng.getrandbits(63))
            meta = _version_of(
                meta_set.layout,
                name,
                version,
                size=len(data),
                inline=data,
                checksum=xxhash.xxh3_64_intdigest(data),
            )
            newer = await meta_set.write(meta)
            if newer is None:
                progress(len(data))
                return Stored(pool, name, version, len(data), 0, 0, inline=True)
            after = [newer]
        raise NotEnoughShards(
            f"{pool}/{name} kept getting newer versions from other writers; try again"
        )

    async def _write_chunks(
        self, io: ChunkIO, src: BinaryIO, first: bytes, progress: Progress
    ) -> tuple[list[ChunkRef], int, int]:
        hasher = xxhash.xxh3_64()
        refs: dict[int, ChunkRef] = {}
        slots = asyncio.Semaphore(self.window)
        size = 0

        async def one(index: int, data: bytes) -> None:
            try:
                refs[index] = await io.write(index, data)
                progress(len(data))
            finally:
                slots.release()

        pending = first
        try:
            async with asyncio.TaskGroup() as tg:
                index = 0
                while True:
                    want = self.chunk_size - len(pending)
                    more = await _read(src, want) if want > 0 else b""
                    data = pending + more if more else pending
                    pending = b""
                    if not data:
                        break
                    hasher.update(data)
                    size += len(data)
                    await slots.acquire()
                    tg.create_task(one(index, data))
                    index += 1
                    if len(data) < self.chunk_size:
                        break
        except* RackError as group:
            raise group.exceptions[0] from None
        return [refs[i] for i in sorted(refs)], size, hasher.intdigest()

    # ---- get ---------------------------------------------------------------------------

    async def head(self, pool: str, name: str) -> ObjectMeta:
        """The newest version of ``pool/name``; raises NotFound if there is none."""
        check_object_name(name)
        layout = self._layout(pool)
        read = await MetaSet(self.link, layout, name, self.fence).read()
        if read.newest is None or read.newest.deleted:
            raise NotFound(f"there is no object {pool}/{name}")
        return read.newest

    async def get(
        self,
        pool: str,
        name: str,
        sink: Sink,
        progress: Progress = _no_progress,
        meta: ObjectMeta | None = None,
    ) -> ObjectMeta:
        """Write the newest version's bytes to ``sink`` in order, each chunk checked first.

        ``meta`` is a version :meth:`head` returned (so a caller that looked first does not
        read the metadata twice). Before the first byte goes out, every chunk is checked to
        have ``k`` shards on OSDs that are up, so a rack that cannot serve the object fails
        the read before it has written anything.
        """
        if meta is None:
            meta = await self.head(pool, name)
        if meta.inline is not None:
            if xxhash.xxh3_64_intdigest(meta.inline) != meta.checksum:
                raise DataCorrupt(
                    f"the inline copy of {pool}/{name} fails its checksum; nothing was returned"
                )
            await _emit(sink, meta.inline)
            progress(len(meta.inline))
            return meta
        layout = self._layout(pool)
        for ref in meta.chunks:
            usable = sum(
                1
                for p, osd in enumerate(ref.osds)
                if p not in ref.missing and osd in layout.cmap.osds and layout.is_up(osd)
            )
            if usable < layout.pool.k:
                raise NotEnoughShards(
                    f"chunk {ref.index} of {pool}/{name} has {usable} shards on OSDs that are "
                    f"up, {layout.pool.k} are needed; nothing was read"
                )
        io = self._chunks(layout, name, meta.version)
        reads: list[asyncio.Task[list[Bytes]]] = []
        try:
            for ref in meta.chunks:
                reads.append(asyncio.ensure_future(io.read(ref)))
                if len(reads) >= self.window:
                    await self._drain_one(reads, sink, progress)
            while reads:
                await self._drain_one(reads, sink, progress)
        finally:
            for task in reads:
                task.cancel()
        return meta

    @staticmethod
    async def _drain_one(
        reads: list[asyncio.Task[list[Bytes]]], sink: Sink, progress: Progress
    ) -> None:
        for part in await reads.pop(0):
            await _emit(sink, part)
            progress(len(part))

    # ---- rm, ls ------------------------------------------------------------------------

    async def rm(self, pool: str, name: str) -> Version:
        """Remove ``pool/name``: a deletion version, newer than every version seen."""
        check_object_name(name)
        layout = self._layout(pool)
        meta_set = MetaSet(self.link, layout, name, self.fence)
        read = await meta_set.read()
        if read.newest is None or read.newest.deleted:
            raise NotFound(f"there is no object {pool}/{name}")
        version = next_version(read.seen, self.wall_ns(), self.rng.getrandbits(63))
        tomb = ObjectMeta(
            pool=layout.pool.id,
            name=name,
            version=version,
            deleted=True,
            written_at=version.ts / 1e9,
        )
        await meta_set.write(tomb)
        return version

    async def ls(self, pool: str, prefix: str = "") -> list[ListEntry]:
        """Every object of ``pool`` whose name starts with ``prefix``, by name.

        Every OSD is asked; the listing is complete while the OSDs that do not answer lie
        in at most ``m`` failure domains of the pool (each object's metadata is on ``k+m``
        OSDs in distinct domains, and a read needs ``max(k, m)`` of them).
        """
        layout = self._layout(pool)
        cmap = layout.cmap
        osds = sorted(cmap.osds)
        up = [osd for osd in osds if layout.is_up(osd)]
        answers = await asyncio.gather(
            *(self._list_osd(layout, osd, prefix) for osd in up), return_exceptions=True
        )
        lists = {osd: a for osd, a in zip(up, answers, strict=True) if isinstance(a, list)}
        for a in answers:
            if isinstance(a, BaseException) and not isinstance(a, RackError):
                raise a
        silent = [osd for osd in osds if osd not in lists]
        domains = {layout.domain_of(osd) for osd in silent}
        if len(domains) > layout.pool.m:
            raise NotEnoughShards(
                f"the OSDs of {len(domains)} {layout.pool.failure_domain}s did not answer, more "
                f"than the pool's {layout.pool.m} parity shards; the listing would be incomplete"
            )
        newest: dict[str, ListEntry] = {}
        for entries in lists.values():
            for e in entries:
                old = newest.get(e.name)
                if old is None or e.version > old.version:
                    newest[e.name] = e
        return [e for _, e in sorted(newest.items()) if not e.deleted]

    async def _list_osd(self, layout: PoolLayout, osd: int, prefix: str) -> list[ListEntry]:
        entries: list[ListEntry] = []
        after = ""
        pool = layout.pool.id
        while True:
            reply, payload = await self.link.request(
                layout.node_of(osd),
                lambda rid, a=after: MetaList(  # type: ignore[misc]
                    rid=rid, osd=osd, pool=pool, prefix=prefix, after=a, limit=LIST_PAGE
                ),
                timeout=META_TIMEOUT_S,
            )
            if not isinstance(reply, MetaListReply):
                raise NotEnoughShards(f"osd.{osd} answered a listing with {type(reply).__name__}")
            page = _decode_entries(payload[0]) if payload else []
            entries += page
            if not reply.more or not page:
                return entries
            after = page[-1].name


def _version_of(layout: PoolLayout, name: str, version: Version, **fields: Any) -> ObjectMeta:
    """The metadata record of a new version of ``name``, coded as its pool says."""
    pool = layout.pool
    return ObjectMeta(
        pool=pool.id,
        name=name,
        version=version,
        k=pool.k,
        m=pool.m,
        plugin=pool.plugin,
        written_at=version.ts / 1e9,
        **fields,
    )


async def _read(src: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; in a thread unless the source is in memory already."""
    if isinstance(src, io.BytesIO):
        return src.read(size)
    return await asyncio.to_thread(src.read, size)


async def _emit(sink: Sink, data: Bytes) -> None:
    result = sink(data)
    if inspect.isawaitable(result):
        await result
