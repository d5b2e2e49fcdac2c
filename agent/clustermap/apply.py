"""Applying a command to the map: a pure, total function.

A replicated state machine must never behave differently on two monitors, so applying
never raises and never reads a clock: a command that does not fit the map (a pool that
already exists, a stale container generation) is *refused* with a sentence, leaves the
map and its epoch untouched, and the refusal is itself deterministic. A command that
changes nothing (re-admitting a node exactly as it is) is a no-op without a new epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from agent.clustermap import containers
from agent.clustermap.commands import (
    AddNode,
    AddOsd,
    AssignContainer,
    Command,
    CreatePool,
    DeletePool,
    MarkPending,
    PutContainer,
    RemoveContainer,
    RemoveNode,
    SetContainerWant,
    SetNodeStates,
    SetOsdState,
    SetServiceNet,
)
from agent.clustermap.model import ClusterMap, NodeInfo, OsdInfo, PoolInfo
from agent.clustermap.placement import why_unplaceable
from agent.names import BadName, check_name
from agent.placement import OsdState

MAX_K_PLUS_M = 255


@dataclass(frozen=True, slots=True)
class Applied:
    cmap: ClusterMap
    refused: str | None = None
    """Why the command was refused; None when it applied (or changed nothing)."""

    @property
    def ok(self) -> bool:
        return self.refused is None


def _bump(cmap: ClusterMap, **changes: object) -> Applied:
    return Applied(msgspec.structs.replace(cmap, epoch=cmap.epoch + 1, **changes))


def _refuse(cmap: ClusterMap, why: str) -> Applied:
    return Applied(cmap, why)


def _changed(cmap: ClusterMap, outcome: tuple[ClusterMap | None, str | None]) -> Applied:
    """A sub-module's (new map, refusal): a new epoch only when something changed."""
    new, why = outcome
    if why is not None or new is None:
        return _refuse(cmap, why or "refused")
    if new == cmap:
        return Applied(cmap)
    return Applied(msgspec.structs.replace(new, epoch=cmap.epoch + 1))


def apply(cmap: ClusterMap, cmd: Command) -> Applied:
    """The map after ``cmd``; see the module docstring for refusals and no-ops."""
    match cmd:
        case AddNode():
            return _add_node(cmap, cmd)
        case SetNodeStates():
            return _set_node_states(cmap, cmd)
        case RemoveNode(name=name):
            if name not in cmap.nodes:
                return _refuse(cmap, f"there is no node {name!r}")
            if any(c.node == name for c in cmap.containers.values()):
                return _refuse(cmap, f"node {name!r} still has containers assigned")
            nodes = {k: v for k, v in cmap.nodes.items() if k != name}
            osds = {k: v for k, v in cmap.osds.items() if v.node != name}
            return _bump(cmap, nodes=nodes, osds=osds)
        case AddOsd():
            return _add_osd(cmap, cmd)
        case SetOsdState(id=osd_id, state=state):
            osd = cmap.osds.get(osd_id)
            if osd is None:
                return _refuse(cmap, f"there is no osd.{osd_id}")
            if osd.state == state:
                return Applied(cmap)
            changed = msgspec.structs.replace(osd, state=state)
            return _bump(cmap, osds={**cmap.osds, osd_id: changed})
        case CreatePool():
            return _create_pool(cmap, cmd)
        case DeletePool(name=name):
            if name not in cmap.pools:
                return _refuse(cmap, f"there is no pool {name!r}")
            return _bump(cmap, pools={k: v for k, v in cmap.pools.items() if k != name})
        case PutContainer():
            return _changed(cmap, containers.put_container(cmap, cmd))
        case AssignContainer():
            return _changed(cmap, containers.assign(cmap, cmd))
        case SetContainerWant():
            return _changed(cmap, containers.set_want(cmap, cmd))
        case MarkPending():
            return _changed(cmap, containers.mark_pending(cmap, cmd))
        case SetServiceNet():
            return _changed(cmap, containers.set_service_net(cmap, cmd))
        case RemoveContainer(name=name):
            if name not in cmap.containers:
                return _refuse(cmap, f"there is no container {name!r}")
            return _bump(
                cmap,
                containers={k: v for k, v in cmap.containers.items() if k != name},
                retired={**cmap.retired, name: cmap.containers[name].generation},
            )
    return _refuse(cmap, f"unknown command {type(cmd).__name__}")  # pragma: no cover


def _add_node(cmap: ClusterMap, cmd: AddNode) -> Applied:
    record = cmd.node
    try:
        check_name(record.name, "node name")
    except BadName as exc:
        return _refuse(cmap, str(exc))
    old = cmap.nodes.get(record.name)
    if old is not None and old.public_key != record.public_key:
        return _refuse(cmap, f"node {record.name!r} is already in the map with another key")
    new = NodeInfo(
        **msgspec.structs.asdict(record),
        incarnation=cmd.incarnation,
        rack=cmd.rack,
        state=old.state if old else "up",
        down_since=old.down_since if old else None,
    )
    if new == old:
        return Applied(cmap)
    return _bump(cmap, nodes={**cmap.nodes, record.name: new})


def _set_node_states(cmap: ClusterMap, cmd: SetNodeStates) -> Applied:
    nodes = dict(cmap.nodes)
    osds = dict(cmap.osds)
    for change in cmd.changes:
        node = nodes.get(change.name)
        if node is None:
            return _refuse(cmap, f"there is no node {change.name!r}")
        if change.state == "out" and node.state == "up":
            return _refuse(cmap, f"node {change.name!r} is up; only a down node can go out")
        incarnation = node.incarnation if change.incarnation is None else change.incarnation
        down_since = node.down_since
        if change.state == "down" and node.state != "down":
            down_since = cmd.at
        elif change.state == "up":
            down_since = None
        nodes[change.name] = msgspec.structs.replace(
            node, state=change.state, incarnation=incarnation, down_since=down_since
        )
        for osd_id, osd in osds.items():
            if osd.node == change.name and osd.state != change.state:
                osds[osd_id] = msgspec.structs.replace(osd, state=OsdState(change.state))
    if nodes == cmap.nodes and osds == cmap.osds:
        return Applied(cmap)
    return _bump(cmap, nodes=nodes, osds=osds)


def _add_osd(cmap: ClusterMap, cmd: AddOsd) -> Applied:
    if cmd.node not in cmap.nodes:
        return _refuse(cmap, f"there is no node {cmd.node!r} for the osd")
    if cmd.weight <= 0:
        return _refuse(cmap, f"an osd needs a positive weight, not {cmd.weight}")
    for osd in cmap.osds.values():
        if osd.node == cmd.node and osd.path == cmd.path:
            if osd.weight == cmd.weight:
                return Applied(cmap)
            changed = msgspec.structs.replace(osd, weight=cmd.weight)
            return _bump(cmap, osds={**cmap.osds, osd.id: changed})
    osd_id = max(cmap.osds, default=-1) + 1
    state = OsdState(cmap.nodes[cmd.node].state)
    new = OsdInfo(id=osd_id, node=cmd.node, path=cmd.path, weight=cmd.weight, state=state)
    return _bump(cmap, osds={**cmap.osds, osd_id: new})


def _create_pool(cmap: ClusterMap, cmd: CreatePool) -> Applied:
    try:
        check_name(cmd.name, "pool name")
    except BadName as exc:
        return _refuse(cmap, str(exc))
    if cmd.name in cmap.pools:
        return _refuse(cmap, f"pool {cmd.name!r} already exists")
    if cmd.k < 2 or cmd.m < 1 or cmd.k + cmd.m > MAX_K_PLUS_M:
        return _refuse(cmap, f"a pool needs k >= 2, m >= 1 and k + m <= 255, not {cmd.k}+{cmd.m}")
    if not 1 <= cmd.pg_num <= 65536:
        return _refuse(cmap, f"pg_num must be 1 to 65536, not {cmd.pg_num}")
    unplaceable = why_unplaceable(cmap, cmd.k, cmd.m, cmd.failure_domain)
    if unplaceable is not None:
        return _refuse(cmap, unplaceable)
    pool_id = max((p.id for p in cmap.pools.values()), default=0) + 1
    pool = PoolInfo(
        name=cmd.name,
        id=pool_id,
        k=cmd.k,
        m=cmd.m,
        plugin=cmd.plugin,
        pg_num=cmd.pg_num,
        failure_domain=cmd.failure_domain,
    )
    return _bump(cmap, pools={**cmap.pools, cmd.name: pool})
