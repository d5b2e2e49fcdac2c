"""Lease renewals: a compute node asks every monitor, and counts a majority's grants.

Renewals go out every ``lease_renew`` to every monitor at once, each its own request, so
one slow or dead monitor never delays the others; the lease counts from the send of a
renewal a majority granted (:class:`~agent.core.lease.LeaseHolder`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.core.lease import LeaseHolder
from agent.errors import RackError
from agent.node.clock import every
from agent.node.events import EventSink
from agent.node.service import NodeContext
from agent.services.mapcache import MapCache
from agent.services.membership import Membership
from agent.wire import LeaseGrant, LeaseRenew

log = logging.getLogger("agent.supervisor")


class LeaseKeeper:
    def __init__(
        self,
        ctx: NodeContext,
        holder: LeaseHolder,
        membership: Membership,
        mapcache: MapCache,
        *,
        extended: Callable[[bool], None],
        events: EventSink,
    ) -> None:
        self.ctx = ctx
        self.holder = holder
        self.membership = membership
        self.mapcache = mapcache
        self.extended = extended
        self.events = events

    async def renewals(self) -> None:
        await every(self.ctx.clock, self.ctx.conf.timing.lease_renew, self.renew_once)

    def renew_once(self) -> None:
        cmap = self.mapcache.cmap
        if cmap is None or self.ctx.me.name not in cmap.nodes:
            return  # not admitted yet: no monitor would lease it
        seq = self.holder.sending(self.ctx.clock.monotonic())
        for monitor in self.ctx.conf.monitors:
            self.ctx.spawn(self._renew_with(monitor, seq))

    async def _renew_with(self, monitor: str, seq: int) -> None:
        me = self.ctx.me.name
        incarnation = self.membership.incarnation
        try:
            reply, _ = await self.ctx.call(
                monitor,
                lambda rid: LeaseRenew(rid=rid, node=me, incarnation=incarnation),
                # a grant counts from the send, so one that arrives late still extends the
                # lease; over a slow, lossy link (TCP retransmissions) it may take most of it
                self.holder.terms.holder_stop_by(0.0),
            )
        except RackError as exc:
            log.debug("monitor %s did not renew the lease: %s", monitor, exc)
            return
        if not isinstance(reply, LeaseGrant):
            return
        had = self.holder.holds(self.ctx.clock.monotonic())
        if self.holder.granted(seq, monitor, reply.epoch):
            if not had:
                log.info("holds a lease from the monitors")
                self.events("lease_held")
            self.extended(not had)
