"""An object's metadata set: the quorum read that finds the newest version, read repair,
and the quorum write that makes a version (or a deletion) visible.

This is ABD's atomic register over the ``k + m`` OSDs of the object's metadata group:
a write needs ``k + 1`` durable copies; a read hears at least ``R = max(k, m)`` of them,
takes the newest version, and before returning writes it back until ``k + m - R + 1``
OSDs hold it. So once any reader has seen a version, every later reader sees it or a
newer one, even when its writer died half way through (docs/objects.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from agent.data.gather import gather_quorum, raise_if_fenced
from agent.data.link import DataLink
from agent.errors import NotEnoughShards
from agent.objects.format import ObjectMeta, Version
from agent.objects.layout import PoolLayout, newest, read_quorum, repair_quorum, write_quorum
from agent.wire import Fence, MetaGet, MetaGetReply, MetaPut, MetaPutReply

META_TIMEOUT_S = 3.0
_encode = msgspec.msgpack.Encoder().encode
_decode_meta = msgspec.msgpack.Decoder(ObjectMeta).decode


@dataclass(frozen=True, slots=True)
class MetaRead:
    newest: ObjectMeta | None
    holders: frozenset[int]
    """OSDs that answered with ``newest`` (or with nothing, when it is None)."""
    answered: frozenset[int]
    seen: tuple[Version, ...]


class MetaSet:
    """Reads and writes of one object's metadata over the data plane."""

    def __init__(
        self, link: DataLink, layout: PoolLayout, name: str, fence: Fence | None = None
    ) -> None:
        self.link = link
        self.fence = fence
        self.layout = layout
        self.name = name
        self.pg, self.osds = layout.meta_set(name)
        pool = layout.pool
        self.where = f"{pool.name}/{name}"
        self.need_read = read_quorum(pool.k, pool.m)
        self.need_write = write_quorum(pool.k, pool.m)
        self.need_repair = repair_quorum(pool.k, pool.m)

    def _up(self) -> list[int]:
        return [osd for osd in self.osds if self.layout.is_up(osd)]

    async def _get(self, osd: int) -> ObjectMeta | None:
        node = self.layout.node_of(osd)
        pool = self.layout.pool.id
        reply, payload = await self.link.request(
            node,
            lambda rid: MetaGet(rid=rid, osd=osd, pool=pool, name=self.name),
            timeout=META_TIMEOUT_S,
        )
        if not isinstance(reply, MetaGetReply):
            raise NotEnoughShards(f"osd.{osd} answered a metadata read with {type(reply).__name__}")
        return _decode_meta(payload[0]) if reply.found and payload else None

    async def _put(self, osd: int, body: bytes) -> MetaPutReply:
        node = self.layout.node_of(osd)
        reply, _ = await self.link.request(
            node,
            lambda rid: MetaPut(rid=rid, osd=osd, fence=self.fence),
            (body,),
            timeout=META_TIMEOUT_S,
        )
        if not isinstance(reply, MetaPutReply):
            raise NotEnoughShards(
                f"osd.{osd} answered a metadata write with {type(reply).__name__}"
            )
        return reply

    async def read(self, *, repair: bool = True) -> MetaRead:
        """The newest version a read quorum holds; repaired to a write quorum if asked."""
        up = self._up()
        out = await gather_quorum({osd: self._get(osd) for osd in up}, self.need_read)
        if len(out.ok) < self.need_read:
            raise NotEnoughShards(
                f"only {len(out.ok)} of the {len(self.osds)} OSDs holding {self.where}'s "
                f"metadata answered; {self.need_read} are needed to read it"
            )
        best, holders = newest(out.ok)
        seen = tuple(m.version for m in out.ok.values() if m is not None)
        read = MetaRead(best, holders, frozenset(out.ok), seen)
        if repair and best is not None and len(holders) < self.need_repair:
            await self.write(best, skip=holders, need=self.need_repair)
            read = MetaRead(best, frozenset(self._up()), read.answered, read.seen)
        return read

    async def write(
        self, meta: ObjectMeta, skip: frozenset[int] = frozenset(), need: int | None = None
    ) -> Version | None:
        """Make ``meta`` durable on ``need`` OSDs (a write quorum unless told; ``skip``
        already holds it). Returns the newest version an OSD holds that is newer than
        ``meta``'s (it did not take ``meta``), or None when none is."""
        need = self.need_write if need is None else need
        body = _encode(meta)
        targets = [osd for osd in self._up() if osd not in skip]
        if len(targets) + len(skip) < need:
            raise NotEnoughShards(
                f"only {len(self._up())} of the {len(self.osds)} OSDs holding {self.where}'s "
                f"metadata are up, {need} are needed; nothing was changed"
            )
        out = await gather_quorum(
            {osd: self._put(osd, body) for osd in targets}, max(0, need - len(skip))
        )
        durable = len(out.ok) + len(skip)
        if durable < need:
            raise_if_fenced(out.failed)
            why = "; ".join(f"osd.{o}: {e}" for o, e in sorted(out.failed.items())) or (
                f"only {len(self._up())} of its {len(self.osds)} OSDs are up"
            )
            raise NotEnoughShards(
                f"the metadata of {self.where} reached {durable} OSDs, "
                f"{need} are needed, so the change may or may not be visible "
                f"({why})"
            )
        newer = [r.current for r in out.ok.values() if not r.applied and r.current > meta.version]
        return max(newer, default=None)
