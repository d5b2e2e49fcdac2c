"""Messages of the status service: the cluster view behind ``rack status`` (DESIGN §11)."""

from __future__ import annotations

from typing import Any

import msgspec

from agent.record import NodeRecord
from agent.wire.base import Msg
from agent.wire.membership import DiskSummary


class StatusRequest(Msg, frozen=True, kw_only=True, tag="status_request"):
    rid: int
    deadline_ms: int = 0


class NodeStatus(NodeRecord, frozen=True, kw_only=True):
    """One node as the answering agent sees it: its record, plus state and health.

    ``address`` is empty and the ports 0 for an enrolled node nobody has heard yet.
    """

    state: str
    """``up``, ``suspect`` (the map says up, the answering agent does not hear it),
    ``down`` or ``out``."""
    last_heartbeat_age_s: float | None
    osds: tuple[DiskSummary, ...] = ()
    incarnation: int | None = None
    uptime_s: float | None = None
    in_map: bool = False
    """Whether the cluster map lists this node yet (False before monitors admit it)."""
    osd_ids: tuple[int, ...] = ()
    """The ids the cluster map gave this node's disks."""
    loop_lag_s: float | None = None
    """From its latest heartbeat: how late its event loop ran (docs/heartbeats.md)."""
    version: str | None = None
    """The agent version it runs, from its latest heartbeat (rolling updates gate on it)."""
    ec_kernel: str | None = None
    """``isal`` or ``numpy``, from its latest heartbeat: which kernel its codec runs on."""


class Quorum(msgspec.Struct, frozen=True, kw_only=True):
    leader: str | None
    term: int
    members: tuple[str, ...]


class ContainerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One container in ``rack status`` and ``rack ct ls`` (DESIGN §11; docs/ha.md)."""

    name: str
    node: str | None
    address: str | None
    generation: int
    state: str
    """``starting``, ``running``, ``exited``, ``failed``, ``fenced``, ``pending``,
    ``stopping`` or ``stopped``."""
    want: str = "running"
    reason: str | None = None
    """Why it is pending, in plain words."""
    restarts: int = 0
    uptime_s: float | None = None
    volume: str | None = None
    command: tuple[str, ...] = ()


class ClusterStatus(msgspec.Struct, frozen=True, kw_only=True):
    cluster: str
    epoch: int
    quorum: Quorum | None
    nodes: tuple[NodeStatus, ...]
    pools: tuple[dict[str, Any], ...] = ()
    containers: tuple[ContainerStatus, ...] = ()
    formed: bool = False
    """Whether the rack is formed in the answering agent's view (``agent.core.formed``)."""
    forming: tuple[str, ...] = ()
    """What the rack still lacks, in plain words, while it is not formed."""
    answered_by: str = ""


class StatusReply(Msg, frozen=True, kw_only=True, tag="status_reply"):
    rid: int
    status: ClusterStatus
