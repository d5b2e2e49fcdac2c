"""A simulated 5-node rack: the real node code on a simulated network, clock and disk.

One ``random.Random(seed)`` drives everything: the fault profile, which faults strike
when, every node's clock drift, incarnation and Raft timeouts, every message's delay and
loss. A run is: boot the rack and let it form; chaos (kills, reboots, partitions, lossy
links, for ``chaos_s``); heal and let it re-form; then probes, each pulling one node's
power or cutting it off on a calm network and timing the vote against the bound.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import msgspec

from agent.clustermap import ClusterMap
from agent.config import ComputeConfig, DiscoveryConfig, KeysConfig, NodeConfig, TimingConfig
from agent.core.lease import LeaseTable
from agent.core.vote import VoteTally
from agent.enrolment import Allowlist, Enrolled
from agent.node.env import ComputeEnv, NodeEnv, default_tally
from agent.node.node import Node
from agent.record import NodeRecord
from agent.sim.bounds import DRIFT, Assumptions, down_bound
from agent.sim.checker import Checker, RecordingStore
from agent.sim.compute import LoopWatchdog, SimAddresses, SimRuntime
from agent.sim.containers import FailoverProbe, create_containers, wait_containers
from agent.sim.env import SimClock, SimExecutor, peers_factory, sim_disk
from agent.sim.faults import Chaos, Probe
from agent.sim.ledger import RunLedger
from agent.sim.loop import VirtualTimeLoop
from agent.sim.network import CALM, SimNetwork, SimTransport

CLUSTER = "sim"
current_node: contextvars.ContextVar[str] = contextvars.ContextVar("current_node", default="world")
"""Which simulated node the code running now belongs to (for the trace's log lines)."""
POLL_S = 0.05
SERVICE_NET = "10.99.1.0/24"


@dataclass(frozen=True, slots=True)
class SimConfig:
    nodes: int = 5
    monitors: int = 3
    chaos_s: float = 12.0
    probes: int = 2
    form_within_s: float = 20.0
    """Liveness: after healing, the rack must form again within this."""
    probe_timeout_s: float = 15.0
    fsync: tuple[float, float] = (0.0002, 0.004)
    timing: TimingConfig = field(default_factory=TimingConfig)
    containers: int = 2
    ha_probes: int = 2
    lease_ttls: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    """Each seed draws its lease TTL from these: short leases end before the vote, long
    ones outlive it, so the monitors' wait for them is exercised too."""


@dataclass(slots=True)
class SimStats:
    kills: int = 0
    reboots: int = 0
    partitions: int = 0
    elections: int = 0
    downs_committed: int = 0
    probe_seconds: list[float] = field(default_factory=list)
    failover_seconds: list[float] = field(default_factory=list)
    container_starts: int = 0
    probe_bounds: list[float] = field(default_factory=list)
    messages: int = 0
    lost: int = 0
    virtual_s: float = 0.0


class World:
    def __init__(
        self,
        seed: int,
        config: SimConfig | None = None,
        *,
        tally_factory: Callable[[TimingConfig], VoteTally] = default_tally,
        lease_table_factory: Callable[..., LeaseTable] = LeaseTable,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.seed = seed
        self.cfg = cfg = config or SimConfig()
        self.rng = rng = random.Random(seed)
        self.loop = VirtualTimeLoop()
        self.tally_factory = tally_factory
        self.lease_table_factory = lease_table_factory
        self.trace = trace
        ttl = rng.choice(cfg.lease_ttls)
        self.timing = msgspec.structs.replace(cfg.timing, lease_ttl=ttl, lease_renew=ttl / 10)
        self.names = [f"n{i}" for i in range(1, cfg.nodes + 1)]
        self.monitor_names = tuple(self.names[: cfg.monitors])
        self.records = {
            n: NodeRecord(
                name=n,
                address=f"10.99.0.{i}",
                public_key=f"{n}-".ljust(40, "k"),
                roles=(("mon",) if n in self.monitor_names else ()) + ("osd", "compute"),
            )
            for i, n in enumerate(self.names, start=1)
        }
        self.allowlist = Allowlist(
            cluster=CLUSTER,
            keys=tuple(
                Enrolled(name=n, kind="node", public=r.public_key) for n, r in self.records.items()
            ),
        )
        self.net = SimNetwork(self.loop, random.Random(rng.getrandbits(64)))
        self.net.keys = {n: r.public_key for n, r in self.records.items()}
        self.assume = Assumptions(delay_max=CALM.delay_max, fsync_max=cfg.fsync[1], drift=DRIFT)
        self.bound = down_bound(cfg.timing, self.assume)
        self.checker = Checker(seed, self.loop.time, cfg.timing, self.assume, self._trace_line)
        self.checker.maps = self._monitor_map
        self.checker.on_violation = self._fail
        self.ledger = RunLedger(self.checker, self.loop.time)
        self.runtimes: dict[str, SimRuntime] = {}
        self.net.observers.append(self.checker.delivered)
        self.clocks = {
            n: SimClock(self.loop, rng.uniform(-DRIFT, DRIFT), rng.uniform(0, 1e4))
            for n in self.names
        }
        self.stores = {n: RecordingStore(n, self.checker) for n in self.monitor_names}
        self.nodes: dict[str, Node] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._maps_seen: dict[str, ClusterMap] = {}
        self._applied: dict[str, int] = {}
        """Per monitor, since its last boot: the last index the checker saw it apply."""
        self.stats = SimStats()
        self.chaos = Chaos(self)
        self._failure: BaseException | None = None
        self.loop.after_step = self._after_step

    # ---- running -----------------------------------------------------------------------

    def run(self) -> SimStats:
        agent_log = logging.getLogger("agent")
        level, propagate = agent_log.level, agent_log.propagate
        handler = _TraceLog(self) if self.trace else None
        agent_log.setLevel(logging.INFO if handler else logging.CRITICAL)
        if handler is not None:
            agent_log.addHandler(handler)
            agent_log.propagate = False
        main = self.loop.create_task(self._main())
        try:
            self.loop.run_until_complete(main)
        finally:
            try:
                self._shutdown()
            finally:
                agent_log.setLevel(level)
                agent_log.propagate = propagate
                if handler is not None:
                    agent_log.removeHandler(handler)
        self.stats.elections = len(self.checker.leader_of_term)
        self.stats.container_starts = self.ledger.starts
        self.stats.downs_committed = len(self.checker.downs)
        self.stats.messages = self.net.stats["sent"]
        self.stats.lost = self.net.stats["lost"]
        self.stats.virtual_s = round(self.loop.time(), 3)
        return self.stats

    async def _main(self) -> None:
        for name in self.names:
            self.loop.call_later(self.rng.uniform(0, 0.5), self.boot, name)
        await self.wait_formed("the rack never formed")
        await create_containers(self)
        await self.chaos.run()
        self.chaos.heal_all()
        await self.wait_formed(
            f"the rack did not form again within {self.cfg.form_within_s:g} s of healing"
        )
        for _ in range(self.cfg.probes):
            await Probe(self).run(self.chaos.calm_after)
        await wait_containers(self)
        for _ in range(self.cfg.ha_probes):
            await FailoverProbe(self).run()

    def _after_step(self) -> None:
        """The per-step invariants: leaders per term, and one map per epoch everywhere."""
        checker, seen = self.checker, self._maps_seen
        try:
            for name, node in self.nodes.items():
                services = node.services
                cached = services.mapcache.cmap
                if cached is not None and cached is not seen.get(name):
                    seen[name] = cached
                    checker.cached_map(f"{name}'s map cache", cached)
                mon = services.monitor
                if mon is None:
                    continue
                raft = mon.driver.node
                checker.role(name, raft.role, raft.term)
                machine = mon.machine
                if machine.applied_index > self._applied[name]:
                    checker.applied(
                        name, self.stores[name], self._applied[name], machine.applied_index
                    )
                    self._applied[name] = machine.applied_index
                if machine.cmap is not seen.get(name + "/mon"):
                    seen[name + "/mon"] = machine.cmap
                    checker.cached_map(f"{name}'s monitor", machine.cmap)
        except BaseException as exc:  # stop the world at the first violation
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
            self.loop.stop()

    def _shutdown(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        # all_tasks() is a set: sort it, or the order of the last log lines would vary
        pending = sorted(
            (t for t in asyncio.all_tasks(self.loop) if not t.done()), key=lambda t: t.get_name()
        )
        for t in pending:
            t.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()
        if self._failure is not None:
            raise self._failure

    def _trace_line(self, text: str) -> None:
        if self.trace is not None:
            self.trace(text)

    def event(self, text: str) -> None:
        if self.trace is not None:
            self.trace(f"t={self.loop.time():9.3f} {text}")

    def _monitor_map(self, name: str) -> ClusterMap | None:
        node = self.nodes.get(name)
        return node.services.monitor.cmap if node is not None and node.services.monitor else None

    # ---- nodes -------------------------------------------------------------------------

    def conf(self, name: str) -> NodeConfig:
        record = self.records[name]
        return NodeConfig(
            cluster=CLUSTER,
            node=name,
            bind=record.address,
            roles=record.roles,  # type: ignore[arg-type]
            monitors=self.monitor_names,
            data_dir="/nonexistent",
            disks=("/disk0", "/disk1"),
            keys=KeysConfig(secret="-", allowlist="-"),  # noqa: S106 - no key files here
            timing=self.timing,
            compute=ComputeConfig(cpus=2, memory_mib=4096, service_addresses=SERVICE_NET),
            discovery=DiscoveryConfig(enabled=True),
        )

    def boot(self, name: str) -> None:
        if name in self.tasks:
            return
        rng = random.Random(self.rng.getrandbits(64))
        env = NodeEnv(
            clock=self.clocks[name],
            rng=rng,
            transport=SimTransport(self.net, self.records[name]),
            peer_source=peers_factory(self.records, delay=rng.uniform(0.05, 0.3)),
            raft_store=lambda: self.stores[name],
            executor=SimExecutor(random.Random(rng.getrandbits(64)), *self.cfg.fsync),
            disk_usage=sim_disk,
            tally_factory=self.tally_factory,
            compute=self._compute(name, random.Random(rng.getrandbits(64))),
            events=partial(self._node_event, name),
            lease_table_factory=self.lease_table_factory,
        )
        context = contextvars.copy_context()
        context.run(current_node.set, name)
        transport = env.transport
        assert isinstance(transport, SimTransport)
        transport.context = context
        node = context.run(
            Node, self.conf(name), self.records[name].public_key, self.allowlist, env
        )
        self._applied[name] = 0
        self.nodes[name] = node
        task = self.loop.create_task(node.run(), context=context)
        task.add_done_callback(self._ended)
        self.tasks[name] = task
        self.event(f"boot {name}")

    def _compute(self, name: str, rng: random.Random) -> ComputeEnv:
        clock = self.clocks[name]
        runtime = self.runtimes[name] = SimRuntime(name, self.ledger, rng)
        return ComputeEnv(
            runtime=runtime,
            addresses=SimAddresses(),
            watchdog=lambda fire: LoopWatchdog(clock, clock.rate, fire),
        )

    def _node_event(self, name: str, kind: str, **fields: object) -> None:
        detail = " ".join(f"{k}={v}" for k, v in fields.items())
        self.event(f"[{name}] event {kind} {detail}".rstrip())

    def _ended(self, task: asyncio.Task[None]) -> None:
        crash = None if task.cancelled() else task.exception()
        if crash is not None:
            self._fail(crash)  # a node crashed: that is a finding too

    def kill(self, name: str) -> None:
        """Pull the power: nothing more leaves or reaches the node, its tasks stop."""
        node = self.nodes.pop(name, None)
        task = self.tasks.pop(name, None)
        if node is None or task is None:
            return
        transport = node.env.transport
        assert isinstance(transport, SimTransport)
        transport.close()
        runtime = self.runtimes.pop(name, None)
        if runtime is not None:
            runtime.power_off()
        task.cancel()
        self.stats.kills += 1
        self.event(f"kill {name}")

    def running(self) -> list[str]:
        return [n for n in self.names if n in self.nodes]

    # ---- faults ------------------------------------------------------------------------

    def formed(self) -> bool:
        """Every node is running and, in every node's own view, the rack is formed (the
        predicate of ``rack status`` and the lab), all at one map epoch."""
        if len(self.nodes) != len(self.names):
            return False
        epochs = set()
        for node in self.nodes.values():
            view = node.services.status.status()
            if not view.formed:
                return False
            epochs.add(view.epoch)
        return len(epochs) == 1

    async def wait_formed(self, why: str) -> None:
        deadline = self.loop.time() + self.cfg.form_within_s
        while not self.formed():
            if self.loop.time() > deadline:
                raise self.checker.fail(why)
            await asyncio.sleep(POLL_S)
        self.event("the rack is formed")


class _TraceLog(logging.Handler):
    """The nodes' own log lines, in the trace, stamped with virtual time and node."""

    def __init__(self, world: World) -> None:
        super().__init__(logging.INFO)
        self.world = world

    def emit(self, record: logging.LogRecord) -> None:
        self.world._trace_line(
            f"t={self.world.loop.time():9.3f} [{current_node.get()}] {record.levelname.lower()}: "
            f"{record.getMessage()}"
        )
