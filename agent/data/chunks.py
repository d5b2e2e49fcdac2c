"""One chunk on the data plane: encode and write its shards, or read and rebuild it.

A write sends all ``k + m`` shards at once and needs ``k + 1`` of them durable; shards
whose OSD is down or did not answer are recorded as missing. A read asks for ``k``
shards, data first, so a healthy rack needs no decoding; each shard that is missing,
late or corrupt is replaced by the next candidate, up to ``m`` of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import xxhash

from agent.data.gather import gather_quorum, raise_if_fenced
from agent.data.link import DataLink
from agent.ec import Codec
from agent.errors import DataCorrupt, NotEnoughShards, RackError, RemoteError
from agent.objects.format import ChunkRef, ShardHeader, ShardId, Version
from agent.objects.layout import PoolLayout, write_quorum
from agent.wire import ErrorCode, Fence, ShardGet, ShardGetReply, ShardPut

SHARD_PUT_TIMEOUT_S = 10.0
SHARD_GET_TIMEOUT_S = 3.0
Bytes = bytes | memoryview
_CODEC_THREAD = ThreadPoolExecutor(1, thread_name_prefix="codec")
"""Encoding and decoding run off the event loop, on one thread: ISA-L releases the GIL
(the loop runs on meanwhile), the numpy kernel keeps a workspace per thread, and one
thread codes faster than the network carries."""
DAMAGE = frozenset({ErrorCode.CORRUPT, ErrorCode.NOT_FOUND, ErrorCode.IO_ERROR})
"""Answers that mean the shard is damaged on its disk (reported), not merely unreachable."""


@dataclass(frozen=True, slots=True)
class Damage:
    chunk: int
    position: int
    osd: int
    why: str


class ChunkIO:
    """Shards of the chunks of one object version."""

    def __init__(
        self,
        link: DataLink,
        layout: PoolLayout,
        codec: Codec,
        name: str,
        version: Version,
        *,
        wall: Callable[[], float],
        on_damage: Callable[[Damage], None],
        fence: Fence | None = None,
    ) -> None:
        self.link = link
        self.fence = fence
        self.layout = layout
        self.codec = codec
        self.name = name
        self.version = version
        self.wall = wall
        self.on_damage = on_damage
        pool = layout.pool
        self.where = f"{pool.name}/{name}"
        self.need = write_quorum(pool.k, pool.m)

    def _id(self, pg: int, chunk: int, position: int) -> ShardId:
        return ShardId(self.layout.pool.id, pg, self.name, self.version, chunk, position)

    async def write(self, index: int, data: bytes) -> ChunkRef:
        """Encode and store chunk ``index``; raises NotEnoughShards below ``k + 1``."""
        pool = self.layout.pool
        pg = self.layout.pg_of(self.name, index)
        osds = self.layout.osds_of(pg)
        shards = await asyncio.get_running_loop().run_in_executor(
            _CODEC_THREAD, self.codec.encode, data
        )
        checksum = xxhash.xxh3_64_intdigest(data)
        shard_len = len(shards[0])
        up = [p for p, osd in enumerate(osds) if self.layout.is_up(osd)]
        if len(up) < self.need:
            raise NotEnoughShards(
                f"chunk {index} of {self.where} can reach {len(up)} OSDs that are up, "
                f"{self.need} are needed; nothing was written"
            )
        calls = {}
        for position in up:
            header = ShardHeader(
                id=self._id(pg, index, position),
                k=pool.k,
                m=pool.m,
                plugin=pool.plugin,
                chunk_len=len(data),
                shard_len=shard_len,
                written_at=self.wall(),
            )
            calls[position] = self._put(osds[position], header, shards[position])
        out = await gather_quorum(calls, self.need)
        if len(out.ok) < self.need:
            raise_if_fenced(out.failed)
            reasons = "; ".join(f"osd.{osds[p]}: {e}" for p, e in sorted(out.failed.items()))
            raise NotEnoughShards(
                f"chunk {index} of {self.where} reached {len(out.ok)} OSDs, {self.need} are "
                f"needed ({len(up)} of {len(osds)} up{'; ' + reasons if reasons else ''})"
            )
        missing = tuple(p for p in range(len(osds)) if p not in out.ok)
        return ChunkRef(index, len(data), shard_len, pg, osds, missing, checksum)

    async def _put(self, osd: int, header: ShardHeader, shard: Bytes) -> None:
        await self.link.request(
            self.layout.node_of(osd),
            lambda rid: ShardPut(rid=rid, osd=osd, header=header, fence=self.fence),
            (shard,),
            timeout=SHARD_PUT_TIMEOUT_S,
        )

    async def read(self, ref: ChunkRef) -> list[Bytes]:
        """Chunk ``ref``'s data as parts in order, from ``k`` healthy shards (data first).

        The parts are the data shards as received (views, no copy) plus any rebuilt one;
        their checksum is checked end to end before any is returned.
        """
        k = self.layout.pool.k
        candidates = [
            p
            for p in range(len(ref.osds))
            if p not in ref.missing and ref.osds[p] in self.layout.cmap.osds
        ]
        up = [p for p in candidates if self.layout.is_up(ref.osds[p])]
        order = up + [p for p in candidates if p not in up]
        got: dict[int, memoryview] = {}
        tried = 0
        running: dict[asyncio.Task[memoryview], int] = {}
        failures: list[str] = []
        try:
            while len(got) < k:
                while len(got) + len(running) < k and tried < len(order):
                    position = order[tried]
                    tried += 1
                    running[asyncio.ensure_future(self._get(ref, position))] = position
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    position = running.pop(task)
                    exc = task.exception()
                    if exc is None:
                        got[position] = task.result()
                    elif isinstance(exc, RackError):
                        failures.append(f"shard {position} on osd.{ref.osds[position]}: {exc}")
                        self._note(ref, position, exc)
                    else:
                        raise exc
        finally:
            for task in running:
                task.cancel()
        if len(got) < k:
            raise NotEnoughShards(
                f"chunk {ref.index} of {self.where} has {len(got)} readable shards, {k} are "
                f"needed ({'; '.join(failures) or 'its OSDs are gone from the map'})"
            )
        parts = await self._assemble(ref, got)
        digest = xxhash.xxh3_64()
        for part in parts:
            digest.update(part)
        if digest.intdigest() != ref.checksum:
            raise DataCorrupt(
                f"chunk {ref.index} of {self.where} does not match its checksum after "
                "decoding; nothing of it was returned"
            )
        return parts

    async def _assemble(self, ref: ChunkRef, got: dict[int, memoryview]) -> list[Bytes]:
        """The codec's parts: for a healthy ``rs`` read, the data shards themselves, cut.

        Always on the codec thread: other plugins (``isal``) decode even a healthy read.
        """
        return await asyncio.get_running_loop().run_in_executor(
            _CODEC_THREAD, self.codec.decode_parts, got, ref.length
        )

    def _note(self, ref: ChunkRef, position: int, exc: RackError) -> None:
        if isinstance(exc, RemoteError) and exc.code in DAMAGE:
            self.on_damage(Damage(ref.index, position, ref.osds[position], str(exc)))

    async def _get(self, ref: ChunkRef, position: int) -> memoryview:
        osd = ref.osds[position]
        shard = self._id(ref.pg, ref.index, position)
        reply, payload = await self.link.request(
            self.layout.node_of(osd),
            lambda rid: ShardGet(rid=rid, osd=osd, id=shard),
            timeout=SHARD_GET_TIMEOUT_S,
        )
        if not isinstance(reply, ShardGetReply) or len(payload) != 1:
            raise NotEnoughShards(f"osd.{osd} answered a shard read with {type(reply).__name__}")
        if reply.header.id != shard or len(payload[0]) != ref.shard_len:
            raise DataCorrupt(f"osd.{osd} returned another shard than the one asked for")
        return payload[0]
