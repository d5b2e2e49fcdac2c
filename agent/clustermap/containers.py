"""Applying the container commands to the map (pure, part of :func:`apply`).

A spec is checked here, on every monitor alike, so ``rack ct run`` fails with a sentence
the operator can act on: a volume in an unknown pool, an address taken or outside the
rack's pool of service addresses, more memory or CPU than any compute node has, a name
already taken. A spec without an address gets the lowest free one of the pool.
"""

from __future__ import annotations

import ipaddress

import msgspec

from agent.clustermap.commands import (
    AssignContainer,
    MarkPending,
    PutContainer,
    SetContainerWant,
    SetServiceNet,
)
from agent.clustermap.model import ClusterMap, ContainerInfo, ContainerSpec
from agent.names import BadName, check_name

MIB = 1024 * 1024


def put_container(cmap: ClusterMap, cmd: PutContainer) -> tuple[ClusterMap | None, str | None]:
    """The map's containers after adding ``cmd.spec``, or why it is refused."""
    spec = cmd.spec
    try:
        check_name(spec.name, "container name")
    except BadName as exc:
        return None, str(exc)
    if spec.name in cmap.containers:
        return None, f"container {spec.name!r} already exists"
    if not spec.command:
        return None, f"container {spec.name!r} has no command to run"
    why = _volume_problem(cmap, spec) or _resource_problem(cmap, spec)
    if why is not None:
        return None, why
    address, why = _address_for(cmap, spec)
    if why is not None:
        return None, why
    spec = msgspec.structs.replace(spec, address=address)
    info = ContainerInfo(spec=spec, node=None, generation=cmap.retired.get(spec.name, 0))
    return msgspec.structs.replace(cmap, containers={**cmap.containers, spec.name: info}), None


def _volume_problem(cmap: ClusterMap, spec: ContainerSpec) -> str | None:
    if spec.volume is None:
        return None
    pool, sep, _prefix = spec.volume.partition("/")
    if not sep:
        return f"volume {spec.volume!r} is not POOL/PREFIX"
    if pool not in cmap.pools:
        known = ", ".join(sorted(cmap.pools)) or "none yet"
        return f"volume {spec.volume!r} names pool {pool!r}, which does not exist (pools: {known})"
    return None


def _resource_problem(cmap: ClusterMap, spec: ContainerSpec) -> str | None:
    compute = [n for n in cmap.nodes.values() if "compute" in n.roles]
    if not compute:
        return "the rack has no compute node to run containers on"
    if spec.memory_bytes and not any(n.memory_bytes >= spec.memory_bytes for n in compute):
        most = max(n.memory_bytes for n in compute) // MIB
        return (
            f"container {spec.name!r} asks for {spec.memory_bytes // MIB} MiB of memory; "
            f"no compute node has that much (the largest has {most} MiB)"
        )
    if spec.cpu_millis and not any(n.cpus * 1000 >= spec.cpu_millis for n in compute):
        most = max(n.cpus for n in compute)
        return (
            f"container {spec.name!r} asks for {spec.cpu_millis / 1000:g} CPUs; "
            f"no compute node has that many (the largest has {most})"
        )
    return None


def _address_for(cmap: ClusterMap, spec: ContainerSpec) -> tuple[str | None, str | None]:
    net = ipaddress.IPv4Network(cmap.service_net) if cmap.service_net else None
    taken = {c.spec.address for c in cmap.containers.values() if c.spec.address}
    taken |= {n.address for n in cmap.nodes.values()}
    if spec.address is None:
        if net is None:
            return None, "the rack has no pool of service addresses; give the container --address"
        for host in net.hosts():
            if str(host) not in taken:
                return str(host), None
        return None, f"every service address of {net} is taken"
    try:
        address = ipaddress.IPv4Address(spec.address)
    except ValueError:
        return None, f"{spec.address!r} is not an IPv4 address"
    if net is not None and address not in net:
        return None, f"address {address} is outside the rack's service addresses {net}"
    if str(address) in taken:
        return None, f"address {address} is already in use"
    return str(address), None


def _at_generation(
    cmap: ClusterMap, name: str, generation: int
) -> tuple[ContainerInfo | None, str | None]:
    """The container, if it is at ``generation`` (a compare-and-set); else why not."""
    info = cmap.containers.get(name)
    if info is None:
        return None, f"there is no container {name!r}"
    if generation != info.generation:
        return None, f"container {name!r} is at generation {info.generation}, not {generation}"
    return info, None


def assign(cmap: ClusterMap, cmd: AssignContainer) -> tuple[ClusterMap | None, str | None]:
    info, why = _at_generation(cmap, cmd.name, cmd.generation)
    if info is None:
        return None, why
    if cmd.node is not None:
        node = cmap.nodes.get(cmd.node)
        if node is None or node.state != "up" or "compute" not in node.roles:
            return None, f"node {cmd.node!r} is not an up compute node"
    moved = msgspec.structs.replace(
        info, node=cmd.node, generation=info.generation + 1, pending=None
    )
    return msgspec.structs.replace(cmap, containers={**cmap.containers, cmd.name: moved}), None


def set_want(cmap: ClusterMap, cmd: SetContainerWant) -> tuple[ClusterMap | None, str | None]:
    info = cmap.containers.get(cmd.name)
    if info is None:
        return None, f"there is no container {cmd.name!r}"
    if info.want == cmd.want:
        return cmap, None
    changed = msgspec.structs.replace(info, want=cmd.want)
    return msgspec.structs.replace(cmap, containers={**cmap.containers, cmd.name: changed}), None


def mark_pending(cmap: ClusterMap, cmd: MarkPending) -> tuple[ClusterMap | None, str | None]:
    info, why = _at_generation(cmap, cmd.name, cmd.generation)
    if info is None:
        return None, why
    if info.pending == cmd.reason:
        return cmap, None
    changed = msgspec.structs.replace(info, pending=cmd.reason)
    return msgspec.structs.replace(cmap, containers={**cmap.containers, cmd.name: changed}), None


def set_service_net(cmap: ClusterMap, cmd: SetServiceNet) -> tuple[ClusterMap | None, str | None]:
    try:
        net = ipaddress.IPv4Network(cmd.cidr)
    except ValueError:
        return None, f"{cmd.cidr!r} is not an IPv4 network"
    if cmap.service_net == str(net):
        return cmap, None
    return msgspec.structs.replace(cmap, service_net=str(net)), None
