"""The scheduler (pure): where each container runs, and what to do when its node is gone.

New containers go to the up compute node with the most free memory (then CPU, then the
fewest containers, then the name), never beside a container of the same anti-affinity
label. A container whose node is down, out or gone moves to a survivor, but only once the
old node's lease has surely expired (``lease_over``), so it never runs twice. When no node
can take a container it is marked pending with the reason in plain words, and placed as
soon as one can. Every move is a compare-and-set on the generation, the fencing token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.clustermap import AssignContainer, ClusterMap, Command, ContainerInfo, MarkPending
from agent.clustermap.model import NodeInfo

MIB = 1024 * 1024


@dataclass(slots=True)
class _Load:
    cpu_millis: int = 0
    memory_bytes: int = 0
    count: int = 0
    labels: set[str] = field(default_factory=set)


def _usable(node: NodeInfo | None) -> bool:
    return node is not None and node.state == "up" and "compute" in node.roles


def plan(cmap: ClusterMap, lease_over: Callable[[str], bool]) -> list[Command]:
    """The assignments (and pending reasons) due now; ``lease_over(node)`` says whether the
    node's lease has surely ended (the leader's :class:`~agent.core.lease.LeaseTable`)."""
    loads = {name: _Load() for name, n in cmap.nodes.items() if _usable(n)}
    for info in cmap.containers.values():
        load = loads.get(info.node or "")
        if load is not None:
            load.count += 1
            if info.spec.anti_affinity:
                load.labels.add(info.spec.anti_affinity)
            if info.want == "running":
                load.cpu_millis += info.spec.cpu_millis
                load.memory_bytes += info.spec.memory_bytes
    out: list[Command] = []
    for name in sorted(cmap.containers):
        info = cmap.containers[name]
        if info.want != "running" or (info.node is not None and info.node in loads):
            continue
        if info.node is not None and info.node in cmap.nodes and not lease_over(info.node):
            continue  # its old node may still run it until the lease has surely ended
        chosen, why = _choose(cmap, info, loads)
        if chosen is None:
            if info.pending != why:
                out.append(MarkPending(name=name, generation=info.generation, reason=why))
            continue
        out.append(AssignContainer(name=name, node=chosen, generation=info.generation))
        load = loads[chosen]
        load.count += 1
        load.cpu_millis += info.spec.cpu_millis
        load.memory_bytes += info.spec.memory_bytes
        if info.spec.anti_affinity:
            load.labels.add(info.spec.anti_affinity)
    return out


def _choose(
    cmap: ClusterMap, info: ContainerInfo, loads: dict[str, _Load]
) -> tuple[str | None, str]:
    spec = info.spec
    if not loads:
        return None, "no compute node is up"
    fits = []
    for name, load in loads.items():
        node = cmap.nodes[name]
        free_mem = node.memory_bytes - load.memory_bytes
        free_cpu = node.cpus * 1000 - load.cpu_millis
        if spec.anti_affinity and spec.anti_affinity in load.labels:
            continue
        if free_mem < spec.memory_bytes or free_cpu < spec.cpu_millis:
            continue
        fits.append((-free_mem, -free_cpu, load.count, name))
    if fits:
        return min(fits)[3], ""
    return None, _why_none(cmap, info, loads)


def _why_none(cmap: ClusterMap, info: ContainerInfo, loads: dict[str, _Load]) -> str:
    spec = info.spec
    allowed = [n for n, load in loads.items() if spec.anti_affinity not in load.labels]
    if spec.anti_affinity and not allowed:
        return (
            f"every up compute node already runs a container labelled {spec.anti_affinity!r} "
            f"({len(loads)} up)"
        )
    most_mem = max(allowed, key=lambda n: cmap.nodes[n].memory_bytes - loads[n].memory_bytes)
    free_mem = cmap.nodes[most_mem].memory_bytes - loads[most_mem].memory_bytes
    if free_mem < spec.memory_bytes:
        return (
            f"no up compute node has {spec.memory_bytes // MIB} MiB of memory free "
            f"(the most is {max(free_mem, 0) // MIB} MiB, on {most_mem})"
        )
    return f"no up compute node has {spec.cpu_millis / 1000:g} CPUs free"
