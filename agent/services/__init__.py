"""The node's services, one file each, composed by the node's roles (DESIGN §14).

Every node runs membership (heartbeats, detector, reports), the map cache, writes
(routing map changes) and status; a node with the ``mon`` role also runs the monitor.
A node with the ``osd`` role serves its disks (where the environment has a data
plane; the simulation has none). The supervisor, the gateway and metrics join here as
they are built.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.node.env import NodeEnv
from agent.node.service import NodeContext, Service
from agent.services.mapcache import MapCache
from agent.services.membership import Membership
from agent.services.monitor import MonitorService
from agent.services.osd import OsdService
from agent.services.status import StatusService
from agent.services.writes import Writes


@dataclass(frozen=True, slots=True)
class NodeServices:
    membership: Membership
    mapcache: MapCache
    writes: Writes
    status: StatusService
    monitor: MonitorService | None
    osd: OsdService | None

    def all(self) -> list[Service]:
        services: list[Service | None] = [
            self.membership,
            self.mapcache,
            self.monitor,
            self.writes,
            self.status,
            self.osd,
        ]
        return [s for s in services if s is not None]


def compose(ctx: NodeContext, env: NodeEnv) -> NodeServices:
    """The services a node with ``ctx.conf.roles`` runs, wired to each other."""
    membership = Membership(ctx, env.disk_usage)
    mapcache = MapCache(ctx, membership)
    monitor = MonitorService(ctx, env, membership, mapcache) if "mon" in ctx.conf.roles else None
    osd = None
    if "osd" in ctx.conf.roles and env.data_server is not None and env.data_link is not None:
        osd = OsdService(ctx, mapcache, env.data_server, env.data_link)
        membership.contributors.append(osd)
    return NodeServices(
        membership=membership,
        mapcache=mapcache,
        writes=Writes(ctx, membership, mapcache, monitor),
        status=StatusService(ctx, membership, mapcache),
        monitor=monitor,
        osd=osd,
    )
