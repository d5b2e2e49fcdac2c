"""Status: answers ``rack status`` with the view :mod:`agent.core.statusview` builds."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent.core.senders import Allow
from agent.core.statusview import cluster_status
from agent.node.service import Handler, Incoming, NodeContext, Reply, Service
from agent.services.mapcache import MapCache
from agent.services.membership import Membership
from agent.wire import ClusterStatus, StatusReply, StatusRequest


class StatusService(Service):
    name = "status"
    log = logging.getLogger("agent.status")

    def __init__(self, ctx: NodeContext, membership: Membership, mapcache: MapCache) -> None:
        self.ctx = ctx
        self.membership = membership
        self.mapcache = mapcache

    def handlers(self) -> Sequence[Handler]:
        return (Handler(StatusRequest, Allow.ANY, self._answer),)

    def _answer(self, inc: Incoming) -> Reply:
        return StatusReply(rid=inc.msg.rid, status=self.status()), ()

    def status(self) -> ClusterStatus:
        term, leader = self.mapcache.leadership()
        now = self.ctx.clock.monotonic()
        return cluster_status(
            me=self.membership.describe_self(),
            now=now,
            views=self.membership.detector.views(now),
            beats=self.membership.beats,
            peers=self.ctx.peers,
            cmap=self.mapcache.cmap,
            enrolled=[e.name for e in self.ctx.allowlist.nodes()],
            monitors=self.ctx.conf.monitors,
            leader=leader,
            term=term,
        )
