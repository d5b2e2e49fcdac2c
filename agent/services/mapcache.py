"""The map cache: this node's copy of the cluster map, and who leads as far as it knows.

Monitors publish every new epoch on topic ``map``; heartbeats carry each sender's epoch,
so a node that falls behind (or just booted) fetches the map from a monitor. Maps are
taken only as :func:`~agent.core.mapaccept.judge_map` allows: from monitors, for our
cluster, newer than ours. On a monitor the map also comes straight from its own Raft
state machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import msgspec

from agent.clustermap import ClusterMap, decode_map, encode_map
from agent.core.mapaccept import RefuseMap, Take, judge_map
from agent.core.senders import Allow
from agent.errors import RackError
from agent.node.service import Handler, Incoming, NodeContext, Reply, Service
from agent.raft import RaftRole
from agent.services.membership import Membership
from agent.wire import Heartbeat, MapReply, MapRequest, MapUpdate

MAP_FETCH_INTERVAL_S = 1.0
"""A node that is behind asks a monitor for the map at most this often."""
MAP_FETCH_TIMEOUT_S = 2.0


class MapCache(Service):
    name = "mapcache"
    log = logging.getLogger("agent.mapcache")

    def __init__(self, ctx: NodeContext, membership: Membership) -> None:
        self.ctx = ctx
        self.membership = membership
        self.cmap: ClusterMap | None = None
        self._hint: tuple[int, str] | None = None
        self.leader_source: Callable[[], tuple[int, str | None]] | None = None
        """Set by a local monitor: its own Raft view (term, leader) replaces hints."""
        self._fetch_after = 0.0
        self.on_change: list[Callable[[ClusterMap], None]] = []
        """Called with every map taken (the supervisor reconciles on it)."""
        membership.listeners.append(self._heard)
        membership.contributors.append(self)

    def handlers(self) -> Sequence[Handler]:
        return (
            Handler(MapUpdate, Allow.MONITORS, self._published, published=True),
            Handler(MapRequest, Allow.ANY, self._asked),
        )

    def heartbeat_fields(self) -> Mapping[str, object]:
        return {"epoch": self.epoch, "leader": self.leader()}

    @property
    def epoch(self) -> int:
        return 0 if self.cmap is None else self.cmap.epoch

    # ---- the leader --------------------------------------------------------------------

    def leader(self) -> str | None:
        return self.leadership()[1]

    def leadership(self) -> tuple[int, str | None]:
        """(term, leader) as this node knows them: its monitor's view, or the latest hint."""
        if self.leader_source is not None:
            return self.leader_source()
        return self._hint if self._hint is not None else (0, None)

    def note_leader(self, term: int, name: str | None) -> None:
        if name is not None and (self._hint is None or term >= self._hint[0]):
            self._hint = (term, name)

    # ---- taking maps -------------------------------------------------------------------

    def offer(self, cmap: ClusterMap, source: str, *, from_monitor: bool) -> bool:
        """Take ``cmap`` if map acceptance allows; returns whether it was taken."""
        verdict = judge_map(
            cmap,
            cluster=self.ctx.conf.cluster,
            have_epoch=self.epoch,
            source=source,
            from_monitor=from_monitor,
        )
        if isinstance(verdict, RefuseMap):
            self.ctx.bad_input.warning("ignored a map: %s", verdict.reason, key=source)
        if not isinstance(verdict, Take):
            return False
        self.cmap = cmap
        for listener in self.on_change:
            listener(cmap)
        return True

    def _offer_bytes(self, data: bytes, source: str) -> None:
        try:
            cmap = decode_map(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.ctx.bad_input.warning(
                "dropped an undecodable map from %s: %s", source, exc, key=source
            )
            return
        self.offer(cmap, source, from_monitor=source in self.ctx.conf.monitors)

    def _published(self, inc: Incoming) -> None:
        update: MapUpdate = inc.msg
        if update.cluster != self.ctx.conf.cluster:
            return
        self.note_leader(update.term, update.leader)
        if inc.payload:
            self._offer_bytes(inc.payload[0], inc.sender.name)

    def _asked(self, inc: Incoming) -> Reply:
        req: MapRequest = inc.msg
        cmap = self.cmap
        if cmap is None or cmap.epoch <= req.have_epoch:
            return MapReply(rid=req.rid, epoch=self.epoch), ()
        return MapReply(rid=req.rid, epoch=cmap.epoch), (encode_map(cmap),)

    # ---- catching up -------------------------------------------------------------------

    def _heard(self, hb: Heartbeat) -> None:
        name = hb.node.name
        monitors = self.ctx.conf.monitors
        if name in monitors and hb.raft_role == RaftRole.LEADER:
            self.note_leader(hb.raft_term, name)
        now = self.ctx.clock.monotonic()
        if self.leader_source is not None or hb.epoch <= self.epoch or now < self._fetch_after:
            return
        source = self._fetch_source(name)
        if source is not None:
            self._fetch_after = now + MAP_FETCH_INTERVAL_S
            self.ctx.spawn(self._fetch(source))

    def _fetch_source(self, ahead: str) -> str | None:
        """A monitor we hear: the leader, else the one that is ahead, else any."""
        heard = [m for m in self.ctx.conf.monitors if self.membership.hears(m)]
        for candidate in (self.leader(), ahead):
            if candidate in heard:
                return candidate
        return heard[0] if heard else None

    async def _fetch(self, monitor: str) -> None:
        try:
            reply, payload = await self.ctx.call(
                monitor, lambda rid: MapRequest(rid=rid, have_epoch=self.epoch), MAP_FETCH_TIMEOUT_S
            )
        except RackError as exc:
            self.log.debug("could not fetch the map from %s: %s", monitor, exc)
            return
        if isinstance(reply, MapReply) and payload:
            self._offer_bytes(payload[0], monitor)
