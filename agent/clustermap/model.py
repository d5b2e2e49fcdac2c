"""The cluster map: what the monitors agree on, replicated by Raft.

Every change bumps ``epoch``; agents compare epochs to know whether they are current.
The map is plain frozen data (msgspec structs), so it encodes to msgpack for snapshots
and for shipping to agents, and two nodes that applied the same commands hold equal maps.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from agent.placement import Level, OsdState
from agent.record import NodeRecord

NodeState = Literal["up", "down", "out"]


class NodeInfo(NodeRecord, frozen=True, kw_only=True):
    """A node as the map lists it: its record, plus what the monitors decided about it."""

    state: NodeState = "up"
    incarnation: int = 0
    down_since: float | None = None
    """Leader's clock when ``down`` was committed; ``out`` follows after a grace."""
    rack: str = "rack0"


class OsdInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    node: str
    path: str
    weight: int
    """Capacity in bytes; placement is proportional to it."""
    state: OsdState = OsdState.UP


class PoolInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    id: int
    k: int
    m: int
    plugin: str = "rs"
    pg_num: int = 64
    failure_domain: Level = "host"


RestartPolicy = Literal["always", "on-failure", "never"]
Want = Literal["running", "stopped"]


class ContainerSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    command: tuple[str, ...]
    env: dict[str, str] = msgspec.field(default_factory=dict)
    volume: str | None = None
    """``POOL/PREFIX``: where the container keeps its state in the rack."""
    address: str | None = None
    """Its service address; None asks the map to pick one from the rack's pool."""
    cpu_millis: int = 0
    memory_bytes: int = 0
    restart: RestartPolicy = "always"
    anti_affinity: str | None = None
    """Containers with the same label never share a node."""


class ContainerInfo(msgspec.Struct, frozen=True, kw_only=True):
    spec: ContainerSpec
    node: str | None
    generation: int
    """Fencing token: bumped on every (re)assignment; a stale instance's writes are refused."""
    want: Want = "running"
    pending: str | None = None
    """Why no node runs it, in plain words (None while it is placed)."""


class ClusterMap(msgspec.Struct, frozen=True, kw_only=True):
    cluster: str
    epoch: int = 0
    nodes: dict[str, NodeInfo] = msgspec.field(default_factory=dict)
    osds: dict[int, OsdInfo] = msgspec.field(default_factory=dict)
    pools: dict[str, PoolInfo] = msgspec.field(default_factory=dict)
    containers: dict[str, ContainerInfo] = msgspec.field(default_factory=dict)
    service_net: str | None = None
    """The rack's pool of service addresses (a CIDR), from the monitors' config."""
    retired: dict[str, int] = msgspec.field(default_factory=dict)
    """The last generation of each removed container: one created again under its name
    starts above it, so the OSDs' fences (which remember generations by name) admit it."""


def encode_map(cmap: ClusterMap) -> bytes:
    return msgspec.msgpack.encode(cmap)


def decode_map(data: bytes) -> ClusterMap:
    return msgspec.msgpack.decode(data, type=ClusterMap)
