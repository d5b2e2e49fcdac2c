"""The OSD service: one OSD per configured disk, served on the data plane.

Each disk is claimed (its identity file must name this node and path), its incomplete
writes are cleaned up, and its shard store and metadata journal are opened; a disk that
fails any of that is refused, reported in heartbeats and ``rack status``, and never used.
Shard writes run on a small thread pool (each is fsync'd on its own); metadata writes of
one disk are group-committed, one fdatasync for every record that arrived meanwhile.
The collector deletes shards that no object version needs (docs/objects.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from agent.core.fencing import FenceBook
from agent.data.link import DataLink
from agent.errors import BadRequest, Fenced, NotFound, RackError, StorageFault, WireError
from agent.node.clock import every
from agent.node.dataplane import DataServer
from agent.node.service import NodeContext, Service
from agent.objects.format import FORMAT, ObjectMeta, ShardHeader
from agent.services.collector import Collector
from agent.services.mapcache import MapCache
from agent.store import MetaJournal, ShardStore, claim
from agent.store.shards import Staged
from agent.wire import (
    DataMessage,
    DiskSummary,
    ErrorReply,
    Fence,
    ListEntry,
    MetaGet,
    MetaGetReply,
    MetaList,
    MetaListReply,
    MetaPut,
    MetaPutReply,
    ShardDelete,
    ShardDeleteReply,
    ShardGet,
    ShardGetReply,
    ShardPut,
    ShardPutReply,
    decode_data,
    encode_data,
    error_reply,
)
from agent.wire.frames import BytesLike

IO_THREADS = 4
"""Shard reads and writes in flight per node: enough to overlap fsyncs on a few disks."""
MAX_LIST = 10_000

T = TypeVar("T")
_encode = msgspec.msgpack.Encoder().encode
_decode_meta = msgspec.msgpack.Decoder(ObjectMeta).decode
DataAnswer = tuple[DataMessage, Sequence[BytesLike]]


@dataclass(slots=True)
class LocalDisk:
    path: str
    store: ShardStore | None = None
    journal: MetaJournal | None = None
    problem: str | None = None
    """Why the disk is refused (one sentence); None when it serves."""
    queue: list[tuple[ObjectMeta, asyncio.Future[bool]]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    shards: list[tuple[ShardHeader, memoryview, asyncio.Future[None]]] = field(default_factory=list)
    shards_wake: asyncio.Event = field(default_factory=asyncio.Event)

    def serving(self) -> tuple[ShardStore, MetaJournal]:
        if self.store is None or self.journal is None:
            raise StorageFault(self.problem or f"disk {self.path} is not open")
        return self.store, self.journal


def disk_summary(disk: LocalDisk) -> DiskSummary:
    """What heartbeats and ``rack status`` say of one disk."""
    if disk.store is None or disk.journal is None:
        return DiskSummary(
            path=disk.path, total_bytes=0, free_bytes=0, ok=False, problem=disk.problem
        )
    try:
        total, free = disk.store.space()
    except OSError as exc:
        return DiskSummary(
            path=disk.path,
            total_bytes=0,
            free_bytes=0,
            ok=False,
            problem=f"disk {disk.path} cannot be measured: {exc.strerror}",
        )
    return DiskSummary(
        path=disk.path,
        total_bytes=total,
        free_bytes=free,
        used_bytes=disk.store.used_bytes + disk.journal.size_bytes,
        errors=disk.store.errors + disk.journal.damaged,
    )


class OsdService(Service):
    name = "osd"
    log = logging.getLogger("agent.osd")

    def __init__(
        self,
        ctx: NodeContext,
        mapcache: MapCache,
        server: DataServer,
        link: Callable[[], DataLink],
    ) -> None:
        self.ctx = ctx
        self.mapcache = mapcache
        self.fences = FenceBook()
        self.errors_fenced = 0
        """Writes refused for a stale container generation (docs/ha.md)."""
        self.server = server
        self._link_factory = link
        self._link: DataLink | None = None
        self.conf = ctx.conf.storage
        self.io = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="osd-io")
        self.disks = [self._open(path) for path in ctx.conf.disks]
        self.collected = 0
        self._collecting = False
        self.collector = Collector(self.conf, ctx.me.name, self.disks, self._run)

    def _open(self, path: str) -> LocalDisk:
        disk = LocalDisk(path)
        try:
            claim(
                Path(path),
                cluster=self.ctx.conf.cluster,
                node=self.ctx.me.name,
                wall=self.ctx.clock.wall(),
            )
            store = ShardStore(Path(path), reserve_bytes=self.conf.reserve_bytes)
            cleaned = store.open()
            journal = MetaJournal(Path(path))
            records = journal.open()
        except RackError as exc:
            disk.problem = str(exc)
            self.log.error("disk %s is refused: %s", path, exc)
            return disk
        except OSError as exc:
            disk.problem = f"disk {path} cannot be opened: {exc.strerror or exc}"
            self.log.error("%s", disk.problem)
            return disk
        disk.store, disk.journal = store, journal
        self.log.info(
            "disk %s serves: %d metadata records, %d incomplete writes cleaned up",
            path,
            records,
            cleaned,
        )
        return disk

    # ---- lifecycle ---------------------------------------------------------------------

    def loops(self) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
        return (self._serve, self._commit, self._collect)

    async def _serve(self) -> None:
        self.server.start(self._on_request)
        await asyncio.Event().wait()

    def close(self) -> None:
        self.server.close()
        if self._link is not None:
            self._link.close()
        self.io.shutdown(wait=True, cancel_futures=True)  # no write is cut off mid-file
        for disk in self.disks:
            if disk.journal is not None:
                disk.journal.close()

    def heartbeat_fields(self) -> Mapping[str, object]:
        return {"disks": tuple(disk_summary(d) for d in self.disks)}

    # ---- requests ----------------------------------------------------------------------

    def _on_request(self, route: bytes, user: str, frames: list[memoryview]) -> None:
        entry = self.ctx.allowlist.by_public(user)
        if entry is None:
            self.ctx.bad_input.warning(
                "dropped a data request from unenrolled key %s", user, key=user
            )
            return
        try:
            msg, payload = decode_data(frames)
        except WireError as exc:
            self.ctx.bad_input.warning(
                "bad data request from %s: %s", entry.name, exc, key=entry.name
            )
            self.server.reply(route, encode_data(error_reply(0, exc)))
            return
        self.ctx.spawn(self._answer(route, entry.name, msg, payload))

    async def _answer(
        self, route: bytes, who: str, msg: DataMessage, payload: tuple[memoryview, ...]
    ) -> None:
        rid = getattr(msg, "rid", 0)
        try:
            reply, out = await self._handle(msg, payload)
        except RackError as exc:
            reply, out = error_reply(rid, exc), ()
        except Exception as exc:
            self.log.exception("a data request %s from %s failed", type(msg).__name__, who)
            reply = ErrorReply(rid=rid, code="internal", message=f"internal error: {exc}")
            out = ()
        self.server.reply(route, encode_data(reply, out))

    async def _handle(self, msg: DataMessage, payload: tuple[memoryview, ...]) -> DataAnswer:
        match msg:
            case ShardPut():
                disk = self._disk(msg.osd)
                disk.serving()
                self._check_fence(msg.fence)
                if len(payload) != 1:
                    raise BadRequest("a shard write carries its bytes as one payload frame")
                self._check_header(msg.header)
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                disk.shards.append((msg.header, payload[0], done))
                disk.shards_wake.set()
                await done
                return ShardPutReply(rid=msg.rid), ()
            case ShardGet():
                store, _ = self._disk(msg.osd).serving()
                header, data = await self._run(store.get, msg.id)
                return ShardGetReply(rid=msg.rid, header=header), (data,)
            case ShardDelete():
                store, _ = self._disk(msg.osd).serving()
                deleted = sum([await self._run(store.delete, i) for i in msg.ids])
                return ShardDeleteReply(rid=msg.rid, deleted=deleted), ()
            case MetaPut():
                return await self._meta_put(msg, payload)
            case MetaGet():
                _, journal = self._disk(msg.osd).serving()
                meta = journal.get(msg.pool, msg.name)
                body = (_encode(meta),) if meta is not None else ()
                return MetaGetReply(rid=msg.rid, found=meta is not None), body
            case MetaList():
                _, journal = self._disk(msg.osd).serving()
                limit = max(1, min(msg.limit, MAX_LIST))
                names = [m for m in journal.items(msg.pool, msg.prefix) if m.name > msg.after]
                page = [
                    ListEntry(m.name, m.version, m.deleted, m.size, m.written_at)
                    for m in names[:limit]
                ]
                return MetaListReply(rid=msg.rid, more=len(names) > limit), (_encode(page),)
        raise BadRequest(f"the data port does not answer {type(msg).__name__}")

    @staticmethod
    def _check_header(header: ShardHeader) -> None:
        if header.format != FORMAT:
            raise BadRequest(f"shard format {header.format} is not one this OSD writes")

    def _check_fence(self, fence: Fence | None) -> None:
        why = self.fences.check(fence, self.mapcache.cmap)
        if why is not None:
            self.errors_fenced += 1
            raise Fenced(why)

    async def _meta_put(self, msg: MetaPut, payload: tuple[memoryview, ...]) -> DataAnswer:
        disk = self._disk(msg.osd)
        _, journal = disk.serving()
        self._check_fence(msg.fence)
        if len(payload) != 1:
            raise BadRequest("a metadata write carries its record as one payload frame")
        try:
            meta = _decode_meta(payload[0])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadRequest(f"the metadata record does not decode: {exc}") from None
        if meta.format != FORMAT:
            raise BadRequest(f"metadata format {meta.format} is not one this OSD writes")
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        disk.queue.append((meta, fut))
        disk.wake.set()
        applied = await fut
        current = journal.get(meta.pool, meta.name)
        version = current.version if current is not None else meta.version
        return MetaPutReply(rid=msg.rid, applied=applied, current=version), ()

    def _disk(self, osd: int) -> LocalDisk:
        cmap = self.mapcache.cmap
        info = cmap.osds.get(osd) if cmap is not None else None
        if info is None or info.node != self.ctx.me.name:
            raise NotFound(f"osd.{osd} is not a disk of node {self.ctx.me.name}")
        for disk in self.disks:
            if disk.path == info.path:
                return disk
        raise NotFound(f"osd.{osd} ({info.path}) is not configured on node {self.ctx.me.name}")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    # ---- group commit of metadata ------------------------------------------------------

    async def _commit(self) -> None:
        serving = [d for d in self.disks if d.journal is not None]
        if not serving:
            await asyncio.Event().wait()
        await asyncio.gather(
            *(self._commit_disk(d) for d in serving), *(self._write_shards(d) for d in serving)
        )

    async def _write_shards(self, disk: LocalDisk) -> None:
        """Group commit of shard files: every waiting shard is written and fsync'd at once
        (the threads' fsyncs share the filesystem's journal commits), then all are renamed
        into place and each directory touched is fsync'd once; shards that came meanwhile
        form the next batch. (One ``syncfs`` per batch instead measured slower: it flushes
        the whole filesystem.)"""
        store, _ = disk.serving()
        while True:
            await disk.shards_wake.wait()
            disk.shards_wake.clear()
            batch, disk.shards = disk.shards, []
            if not batch:
                continue
            results = await asyncio.gather(
                *(self._run(functools.partial(store.stage, h, d, sync=True)) for h, d, _ in batch),
                return_exceptions=True,
            )
            staged: list[tuple[Staged, asyncio.Future[None]]] = []
            for result, (_, _, fut) in zip(results, batch, strict=True):
                if isinstance(result, Staged):
                    staged.append((result, fut))
                elif not fut.done():
                    fut.set_exception(result)
            try:
                await self._run(functools.partial(store.publish, [s for s, _ in staged], sync=True))
            except RackError as exc:
                for _, fut in staged:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, fut in staged:
                if not fut.done():
                    fut.set_result(None)

    async def _commit_disk(self, disk: LocalDisk) -> None:
        _, journal = disk.serving()
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1, thread_name_prefix="osd-meta") as thread:
            while True:
                await disk.wake.wait()
                disk.wake.clear()
                batch, disk.queue = disk.queue, []
                if not batch:
                    continue
                records = [m for m, _ in batch]
                latest = {(m.pool, m.name): journal.get(m.pool, m.name) for m in records}
                try:
                    applied = await loop.run_in_executor(thread, journal.commit, records)
                except RackError as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (meta, fut), ok in zip(batch, applied, strict=True):
                    if ok:
                        replaced = latest[(meta.pool, meta.name)]
                        latest[(meta.pool, meta.name)] = meta
                        if replaced is not None:
                            self.collector.superseded(replaced, self.ctx.clock.wall())
                    if not fut.done():
                        fut.set_result(ok)

    # ---- the collector -----------------------------------------------------------------

    async def _collect(self) -> None:
        await every(self.ctx.clock, self.conf.gc_interval, self._collect_soon)

    def _collect_soon(self) -> None:
        if self._collecting:
            return
        self._collecting = True

        async def run() -> None:
            try:
                await self.collect_once()
            finally:
                self._collecting = False

        self.ctx.spawn(run())

    async def collect_once(self) -> int:
        """Delete the shards on this node's disks that no object version needs."""
        cmap = self.mapcache.cmap
        if cmap is None:
            return 0
        if self._link is None:
            self._link = self._link_factory()
        deleted = await self.collector.run(cmap, self._link, self.ctx.clock.wall())
        self.collected += deleted
        return deleted
