"""Leases on a monitor: grant them, release them, and, while leading, place containers.

Every monitor grants leases from its own applied map (:mod:`agent.core.lease`): a node
that map has ``up`` is leased, any other is refused. When a node with containers is
committed ``down``, the leader asks every monitor to *release* it; a monitor answers once
it holds that map and its last grant to the node has surely expired. With a majority
released, the scheduler (:mod:`agent.core.scheduler`) may move the node's containers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence

from agent.clustermap import ClusterMap, Command, SetServiceNet
from agent.core.lease import LeaseTable, LeaseTerms
from agent.core.quorum import majority
from agent.core.scheduler import plan
from agent.core.senders import Allow
from agent.errors import NotLeasing, RackError
from agent.node.events import EventSink
from agent.node.service import Handler, Incoming, NodeContext, Reply, Service
from agent.services.monitor import MonitorService
from agent.wire import LeaseGrant, LeaseRelease, LeaseReleased, LeaseRenew

RELEASE_TIMEOUT_S = 3.0
"""How long a monitor waits for the map in which the node is down before it says no."""
RELEASE_RETRY_S = 0.5

LeaseTableFactory = Callable[[LeaseTerms, float], LeaseTable]


def terms_of(ctx: NodeContext) -> LeaseTerms:
    t = ctx.conf.timing
    return LeaseTerms(
        ttl=t.lease_ttl, rho=t.clock_drift, margin=t.lease_margin, stop_time=t.stop_time
    )


class LeaseService(Service):
    name = "leases"
    log = logging.getLogger("agent.leases")

    def __init__(
        self,
        ctx: NodeContext,
        monitor: MonitorService,
        events: EventSink,
        table_factory: LeaseTableFactory = LeaseTable,
    ) -> None:
        self.ctx = ctx
        self.monitor = monitor
        self.events = events
        self.terms = terms_of(ctx)
        self.table = table_factory(self.terms, ctx.clock.monotonic())
        self._released: dict[str, int] = {}
        """Down nodes a majority released, with the map epoch they were asked at."""
        self._asking: set[str] = set()
        self._map_moved = asyncio.Event()
        monitor.planners.append(self._plan)
        monitor.mapcache.on_change.append(self._map_changed)
        self._last_map: ClusterMap | None = None

    def handlers(self) -> Sequence[Handler]:
        return (
            Handler(LeaseRenew, Allow.SPEAKER, self._renew, speaker=lambda m: m.node),
            Handler(LeaseRelease, Allow.MONITORS, self._release),
        )

    # ---- every monitor -----------------------------------------------------------------

    def _renew(self, inc: Incoming) -> Reply:
        req: LeaseRenew = inc.msg
        cmap = self.monitor.cmap
        node = cmap.nodes.get(req.node)
        me = self.ctx.me.name
        if node is None:
            raise NotLeasing(f"monitor {me} has no node {req.node!r} in its map")
        if node.state != "up":
            raise NotLeasing(
                f"node {req.node} is {node.state} in monitor {me}'s map, so it may not run "
                "containers"
            )
        self.table.granted(req.node, self.ctx.clock.monotonic())
        return LeaseGrant(rid=req.rid, ttl=self.terms.ttl, epoch=cmap.epoch), ()

    def _release(self, inc: Incoming) -> Awaitable[Reply]:
        return self._released_when_over(inc.msg)

    async def _released_when_over(self, req: LeaseRelease) -> Reply:
        clock = self.ctx.clock
        try:
            async with clock.timeout(RELEASE_TIMEOUT_S):
                while self.monitor.cmap.epoch < req.epoch:
                    self._map_moved.clear()
                    await self._map_moved.wait()
        except TimeoutError:
            raise NotLeasing(
                f"monitor {self.ctx.me.name} does not have map epoch {req.epoch} yet"
            ) from None
        while True:
            node = self.monitor.cmap.nodes.get(req.node)
            if node is not None and node.state == "up":
                return LeaseReleased(rid=req.rid, released=False), ()
            wait = self.table.released_at(req.node) - clock.monotonic()
            if wait <= 0:
                return LeaseReleased(rid=req.rid, released=True), ()
            await clock.sleep(wait)

    def _map_changed(self, cmap: ClusterMap) -> None:
        self._map_moved.set()
        old, self._last_map = self._last_map, cmap
        if old is None or not self.monitor.leads:
            return
        for name, node in cmap.nodes.items():
            was = old.nodes.get(name)
            if was is not None and was.state != node.state:
                self.events("node_state", subject=name, state=node.state, epoch=cmap.epoch)
                if node.state != "up":
                    self.monitor.chores_soon()  # ask for its leases now, not next round
        for name, info in cmap.containers.items():
            was_c = old.containers.get(name)
            if was_c is None or was_c.generation != info.generation:
                self.events(
                    "container_assigned",
                    container=name,
                    generation=info.generation,
                    to=info.node,
                    epoch=cmap.epoch,
                )

    # ---- the leader --------------------------------------------------------------------

    def _plan(self, cmap: ClusterMap, now: float) -> list[Command]:
        """The leader's container chores: the address pool, releases to ask, placements."""
        out: list[Command] = []
        want_net = self.ctx.conf.compute.service_addresses
        if want_net and cmap.service_net != str(ipaddress.IPv4Network(want_net)):
            out.append(SetServiceNet(cidr=want_net))
        for name in list(self._released):
            node = cmap.nodes.get(name)
            if node is None or node.state == "up":
                del self._released[name]  # back up: a later down asks again
        for name in self._stranded(cmap):
            if name not in self._released and name not in self._asking:
                self._asking.add(name)
                self.ctx.spawn(self._collect(name, cmap.epoch))
        out += plan(cmap, lambda node: node in self._released)
        return out

    @staticmethod
    def _stranded(cmap: ClusterMap) -> set[str]:
        """Nodes not up that are assigned containers meant to run."""
        out = set()
        for info in cmap.containers.values():
            node = cmap.nodes.get(info.node or "")
            if node is not None and node.state != "up" and info.want == "running":
                out.add(node.name)
        return out

    async def _collect(self, node: str, epoch: int) -> None:
        """Ask every monitor to release ``node`` until a majority has, or it is up again."""
        monitors = self.ctx.conf.monitors
        need = majority(len(monitors))
        try:
            while self.monitor.leads:
                released = await self._majority_released(node, epoch, need)
                if len(released) >= need:
                    self._released[node] = epoch
                    self.log.warning(
                        "the leases of %s are over (released by %s): moving its containers",
                        node,
                        ", ".join(released),
                    )
                    self.events("leases_released", subject=node, by=released, epoch=epoch)
                    self.monitor.chores_soon()
                    return
                current = self.monitor.cmap.nodes.get(node)
                if current is None or current.state == "up":
                    return
                await self.ctx.clock.sleep(RELEASE_RETRY_S)
        finally:
            self._asking.discard(node)

    async def _majority_released(self, node: str, epoch: int, need: int) -> list[str]:
        """Ask every monitor at once; return as soon as ``need`` released (or all answered),
        so a dead monitor's timeout never delays a failover."""
        asks = [asyncio.ensure_future(self._ask(m, node, epoch)) for m in self.ctx.conf.monitors]
        released: list[str] = []
        try:
            for next_answer in asyncio.as_completed(asks):
                monitor, ok = await next_answer
                if ok:
                    released.append(monitor)
                if len(released) >= need:
                    break
        finally:
            for task in asks:
                task.cancel()
        return sorted(released)

    async def _ask(self, monitor: str, node: str, epoch: int) -> tuple[str, bool]:
        timeout = RELEASE_TIMEOUT_S + self.terms.release_at(0.0)
        try:
            reply, _ = await self.ctx.call(
                monitor, lambda rid: LeaseRelease(rid=rid, node=node, epoch=epoch), timeout
            )
        except RackError as exc:
            self.log.debug("monitor %s did not release %s: %s", monitor, node, exc)
            return monitor, False
        return monitor, isinstance(reply, LeaseReleased) and reply.released
