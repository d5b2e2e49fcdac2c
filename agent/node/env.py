"""Everything a node takes from the world, so the same node runs for real or simulated.

Production builds one in :mod:`agent.node.main` (system clock, ZeroMQ, zeroconf, files,
a disk thread); the whole-node simulation builds one per simulated node (drifting clock,
simulated network, in-memory Raft log, simulated fsync latency). Policies that tests
replace on purpose (a deliberately broken vote) come in here too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from agent.config import TimingConfig
from agent.core.lease import LeaseTable
from agent.core.vote import VoteTally, report_ttl
from agent.data.link import DataLink
from agent.enrolment import Allowlist
from agent.node.clock import Clock
from agent.node.dataplane import DataServer
from agent.node.events import EventSink, no_events
from agent.node.executor import Executor
from agent.node.transport import Transport
from agent.raft import LogStore, RaftNode
from agent.record import NodeRecord
from agent.runtime.process import RunSpec
from agent.wire import DiskSummary


class PeerSource(Protocol):
    """Finds peers (zeroconf in production) and hands each admitted one to the node."""

    allowlist: Allowlist
    """Who may be admitted; replaced when the allowlist file changes."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


PeerSourceFactory = Callable[[NodeRecord, str, Allowlist, Callable[[NodeRecord], None]], PeerSource]


class ContainerInstance(Protocol):
    """One running container (:class:`agent.runtime.process.Instance`, or simulated)."""

    pid: int

    def kill(self) -> None:
        """Kill the whole tree now; thread-safe, idempotent, never raises."""
        ...

    async def stop(self, grace: float = 2.0) -> int | None: ...

    async def wait(self) -> int: ...


class ContainerRuntime(Protocol):
    async def start(self, spec: RunSpec) -> ContainerInstance: ...


class AddressPlumbing(Protocol):
    """Puts a container's service address on this node and takes it off again."""

    async def add(self, address: str) -> None: ...

    async def remove(self, address: str) -> None: ...


class Watchdog(Protocol):
    """Calls its ``fire`` once the armed deadline (the node's monotonic clock) passes,
    from a thread the event loop cannot delay (production) or on the loop (simulation)."""

    def arm(self, deadline: float) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeEnv:
    """What the supervisor takes from the world; None in a world without containers."""

    runtime: ContainerRuntime
    addresses: AddressPlumbing
    watchdog: Callable[[Callable[[], None]], Watchdog]


def default_tally(timing: TimingConfig) -> VoteTally:
    return VoteTally(report_ttl=report_ttl(timing.dead_after), out_after=timing.out_after)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeEnv:
    clock: Clock
    rng: random.Random
    """The node's one random source (incarnation, request ids, Raft's election timeouts)."""
    transport: Transport
    peer_source: PeerSourceFactory | None
    raft_store: Callable[[], LogStore]
    """Opens the monitor's Raft log (called once per start of a monitor)."""
    executor: Executor
    disk_usage: Callable[[str], DiskSummary]
    raft_factory: Callable[..., RaftNode] = RaftNode
    tally_factory: Callable[[TimingConfig], VoteTally] = field(default=default_tally)
    data_server: DataServer | None = None
    """The data plane's server socket; None where no OSD can run (the simulation)."""
    data_link: Callable[[], DataLink] | None = None
    """Opens the data plane's client side (the OSD's collector reads metadata with it)."""
    compute: ComputeEnv | None = None
    events: EventSink = no_events
    """Where lease and container events go (docs/ha.md): a file, or the simulation."""
    allowlist_file: Callable[[], Allowlist | None] | None = None
    """The allowlist on disk, looked at every second: a new list when the file changed
    (``agent.node.allowlist_file``); None where there is no file (the simulation)."""
    lease_table_factory: Callable[..., LeaseTable] = LeaseTable
    """The monitors' lease table; the simulation swaps in a broken one on purpose."""
