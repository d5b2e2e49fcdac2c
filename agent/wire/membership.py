"""Messages of the membership service: heartbeats (PUB/SUB) and health reports (to monitors)."""

from __future__ import annotations

from typing import Final

import msgspec

from agent.record import NodeRecord
from agent.wire.base import Msg

HEARTBEAT_PREFIX: Final = b"hb."


def heartbeat_topic(node: str) -> bytes:
    """``hb.<node>``: ZeroMQ filters subscriptions on it (docs/heartbeats.md)."""
    return HEARTBEAT_PREFIX + node.encode()


class DiskSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One disk of a node as its heartbeats report it (its OSD's figures, on an OSD)."""

    path: str
    total_bytes: int
    free_bytes: int
    ok: bool = True
    used_bytes: int = 0
    """Bytes of shards and metadata the OSD keeps on it."""
    errors: int = 0
    """Checksum failures and I/O errors the OSD met on it since it started."""
    problem: str | None = None
    """Why the disk is refused (a foreign or swapped disk, say), in one sentence."""


class ContainerSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A container as the node running it reports it (docs/heartbeats.md)."""

    name: str
    generation: int
    state: str
    """``starting``, ``running``, ``exited``, ``failed``, ``stopped`` or ``fenced``."""
    pid: int = 0
    restarts: int = 0
    exit_code: int | None = None
    address: str | None = None
    uptime_s: float = 0.0


class Heartbeat(Msg, frozen=True, kw_only=True, tag="heartbeat"):
    """Published every interval by every agent; see docs/heartbeats.md for viewers.

    A receiver accepts it only on the subscription of the node ``node.name`` names.
    """

    cluster: str
    node: NodeRecord
    incarnation: int
    seq: int
    epoch: int = 0
    uptime_s: float = 0.0
    sent_at: float = 0.0
    disks: tuple[DiskSummary, ...] = ()
    containers: tuple[ContainerSummary, ...] = ()
    raft_role: str | None = None
    raft_term: int = 0
    leader: str | None = None
    """The monitor this node believes leads (a hint; monitors know, others hear it)."""
    version: str = ""
    ec_kernel: str = ""
    """The erasure-code kernel this node's codec runs on: ``isal`` or ``numpy`` (docs/ec.md)."""
    loop_lag_s: float = 0.0
    """The longest the agent's event loop was late since the last heartbeat (a stalled
    loop is what a lease must survive; docs/ha.md)."""


class HealthReport(Msg, frozen=True, kw_only=True, tag="health_report"):
    """What a node's failure detector says of its peers, sent to the monitors for the vote.

    ``incarnation`` and ``seq`` order a reporter's reports, so one delayed in the network
    cannot replace a newer one.
    """

    reporter: str
    incarnation: int = 0
    seq: int = 0
    dead: tuple[str, ...] = ()
    alive: dict[str, int] = msgspec.field(default_factory=dict)
    """Peers heard recently, with the incarnation heard."""
