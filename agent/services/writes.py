"""Writes: any node takes a map change and commits it, forwards it, or refuses it and why.

Where it goes is decided by :func:`~agent.core.routing.route_write`; this service only
carries it there and brings the answer back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence

import msgspec

from agent.clustermap import Command, decode_command
from agent.core.routing import Forward, Lead, deadline_s, forwarded_deadline_ms, route_write
from agent.core.senders import Allow
from agent.errors import BadRequest, NoLeader, NoQuorum, UnexpectedMessage
from agent.node.service import Handler, Incoming, NodeContext, Reply, Service
from agent.services.mapcache import MapCache
from agent.services.membership import Membership
from agent.services.monitor import MonitorService
from agent.wire import Payload, ProposeReply, ProposeRequest


class Writes(Service):
    name = "writes"
    log = logging.getLogger("agent.writes")

    def __init__(
        self,
        ctx: NodeContext,
        membership: Membership,
        mapcache: MapCache,
        monitor: MonitorService | None,
    ) -> None:
        self.ctx = ctx
        self.membership = membership
        self.mapcache = mapcache
        self.monitor = monitor

    def handlers(self) -> Sequence[Handler]:
        return (Handler(ProposeRequest, Allow.ANY, self._propose),)

    def _propose(self, inc: Incoming) -> Awaitable[Reply]:
        req: ProposeRequest = inc.msg
        if len(inc.payload) != 1:
            raise BadRequest("a proposal carries exactly one command")
        try:
            cmd = decode_command(inc.payload[0])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadRequest(f"the command does not decode: {exc}") from None
        return self._carry(req, cmd, inc.payload)

    async def _carry(self, req: ProposeRequest, cmd: Command, payload: Payload) -> Reply:
        conf = self.ctx.conf
        timeout = deadline_s(req.deadline_ms)
        route = route_write(
            me=self.ctx.me.name,
            monitors=conf.monitors,
            leads=self.monitor is not None and self.monitor.leads,
            leader=self.mapcache.leader(),
            heard=[m for m in conf.monitors if self.membership.hears(m)],
            hops=req.hops,
        )
        if isinstance(route, Lead):
            assert self.monitor is not None
            applied = await self.monitor.propose(cmd, timeout)
            return ProposeReply(rid=req.rid, epoch=applied.cmap.epoch, refused=applied.refused), ()
        if isinstance(route, Forward):
            onward = forwarded_deadline_ms(req.deadline_ms)
            reply, _ = await self.ctx.call(
                route.to,
                lambda rid: ProposeRequest(rid=rid, deadline_ms=onward, hops=route.hops),
                timeout,
                payload,
            )
            if not isinstance(reply, ProposeReply):
                raise UnexpectedMessage(
                    f"the leader answered a proposal with {type(reply).__name__}"
                )
            return msgspec.structs.replace(reply, rid=req.rid), ()
        raise (NoLeader if route.quorum else NoQuorum)(route.reason)
