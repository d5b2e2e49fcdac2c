"""The node's services, one file each, composed by the node's roles (DESIGN §14).

Every node runs membership (heartbeats, detector, reports), the map cache, writes
(routing map changes) and status; a node with the ``mon`` role also runs the monitor.
A node with the ``osd`` role serves its disks (where the environment has a data
plane; the simulation has none). Monitors grant leases and, while leading, place
containers; a ``compute`` node runs the supervisor. The gateway and metrics join here as
they are built.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.node.env import NodeEnv
from agent.node.service import NodeContext, Service
from agent.services.leases import LeaseService
from agent.services.mapcache import MapCache
from agent.services.membership import Membership
from agent.services.monitor import MonitorService
from agent.services.osd import OsdService
from agent.services.status import StatusService
from agent.services.supervisor import Supervisor
from agent.services.writes import Writes


@dataclass(frozen=True, slots=True)
class NodeServices:
    membership: Membership
    mapcache: MapCache
    writes: Writes
    status: StatusService
    monitor: MonitorService | None
    osd: OsdService | None
    leases: LeaseService | None
    supervisor: Supervisor | None

    def all(self) -> list[Service]:
        services: list[Service | None] = [
            self.membership,
            self.mapcache,
            self.monitor,
            self.leases,
            self.writes,
            self.status,
            self.osd,
            self.supervisor,
        ]
        return [s for s in services if s is not None]


def compose(ctx: NodeContext, env: NodeEnv) -> NodeServices:
    """The services a node with ``ctx.conf.roles`` runs, wired to each other."""
    membership = Membership(ctx, env.disk_usage, env.events)
    mapcache = MapCache(ctx, membership)
    monitor = MonitorService(ctx, env, membership, mapcache) if "mon" in ctx.conf.roles else None
    osd = None
    if "osd" in ctx.conf.roles and env.data_server is not None and env.data_link is not None:
        osd = OsdService(ctx, mapcache, env.data_server, env.data_link)
        membership.contributors.append(osd)
    leases = None
    if monitor is not None:
        leases = LeaseService(ctx, monitor, env.events, env.lease_table_factory)
    supervisor = None
    if "compute" in ctx.conf.roles and env.compute is not None:
        supervisor = Supervisor(ctx, env.compute, membership, mapcache, env.events)
    return NodeServices(
        membership=membership,
        mapcache=mapcache,
        writes=Writes(ctx, membership, mapcache, monitor),
        status=StatusService(ctx, membership, mapcache),
        monitor=monitor,
        osd=osd,
        leases=leases,
        supervisor=supervisor,
    )
