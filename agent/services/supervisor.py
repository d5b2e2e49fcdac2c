"""The supervisor: runs the containers the map assigns to this node, while it holds a lease.

It renews the node's lease with every monitor (:class:`~agent.core.lease.LeaseHolder`),
reconciles the map with what runs (start what is assigned here, stop what is not),
restarts a crashed container in place by its restart policy, and reports each one in
heartbeats. When the lease runs out, a watchdog outside the event loop kills every
container at once (:class:`KillSwitch`), so a stalled loop cannot make a container outlive
its lease. Decisions about *where* containers run are the scheduler's, on the leader.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.clustermap import ClusterMap, ContainerInfo
from agent.config import NodeConfig
from agent.core.lease import LeaseHolder
from agent.core.quorum import majority
from agent.core.senders import Allow
from agent.errors import RackError
from agent.node.env import ComputeEnv, ContainerInstance
from agent.node.events import EventSink
from agent.node.service import Handler, Incoming, NodeContext, Reply, Service
from agent.runtime.process import RunSpec
from agent.services.leases import terms_of
from agent.services.mapcache import MapCache
from agent.services.membership import Membership
from agent.services.renewals import LeaseKeeper
from agent.wire import ContainerSummary, LogReply, LogRequest

START_AHEAD_S = 0.3
"""A container is started only if the lease lasts at least this much longer."""
RECONCILE_S = 0.2
STOP_GRACE_S = 2.0
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0
STEADY_S = 10.0
"""A container that ran this long starts its crash backoff afresh."""
MAX_LOG_BYTES = 1024 * 1024


def state_dir(conf: NodeConfig) -> Path:
    """Where container logs and pidfiles go (the agent makes it at start)."""
    return Path(conf.compute.state_dir or Path(conf.data_dir) / "containers")


def scope_of(conf: NodeConfig) -> str:
    """The prefix of this node's cgroups (lab nodes share one machine's hierarchy)."""
    return f"{conf.cluster[:8]}-{conf.node}"


@dataclass(slots=True)
class Slot:
    """One container on this node, across its restarts in place."""

    info: ContainerInfo
    instance: ContainerInstance | None = None
    state: str = "starting"
    restarts: int = 0
    exit_code: int | None = None
    started_at: float = 0.0
    retry_at: float = 0.0
    backoff: float = BACKOFF_FIRST_S
    retiring: bool = False
    done: bool = False
    """Exited and not to be restarted (policy never, or on-failure after success)."""

    @property
    def name(self) -> str:
        return self.info.spec.name

    @property
    def generation(self) -> int:
        return self.info.generation


class KillSwitch:
    """The instances running now, killed all at once when the lease ends (thread-safe)."""

    def __init__(self, on_trip: Callable[[list[tuple[str, int]]], None]) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, tuple[int, ContainerInstance]] = {}
        self._on_trip = on_trip
        self.tripped = True
        """No lease yet: nothing may run until the first grant resets it."""

    def add(self, name: str, generation: int, instance: ContainerInstance) -> bool:
        """Register a started instance; False (and killed) if the lease ended meanwhile."""
        with self._lock:
            if self.tripped:
                instance.kill()
                return False
            self._live[name] = (generation, instance)
            return True

    def remove(self, name: str, instance: ContainerInstance) -> None:
        with self._lock:
            if name in self._live and self._live[name][1] is instance:
                del self._live[name]

    def trip(self) -> None:
        with self._lock:
            if self.tripped:
                return
            self.tripped = True
            killed = [(name, gen) for name, (gen, _inst) in self._live.items()]
            for _gen, instance in self._live.values():
                instance.kill()
            self._live.clear()
        self._on_trip(killed)

    def reset(self) -> None:
        with self._lock:
            self.tripped = False


class Supervisor(Service):
    name = "supervisor"
    log = logging.getLogger("agent.supervisor")

    def __init__(
        self,
        ctx: NodeContext,
        compute: ComputeEnv,
        membership: Membership,
        mapcache: MapCache,
        events: EventSink,
    ) -> None:
        self.ctx = ctx
        self.compute = compute
        self.membership = membership
        self.mapcache = mapcache
        self.events = events
        self.holder = LeaseHolder(terms_of(ctx), majority(len(ctx.conf.monitors)))
        conf = ctx.conf
        self.state_dir = state_dir(conf)
        self.scope = scope_of(conf)
        self.slots: dict[str, Slot] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.switch = KillSwitch(self._tripped)
        self.watchdog = compute.watchdog(self.switch.trip)
        self.keeper = LeaseKeeper(
            ctx, self.holder, membership, mapcache, extended=self._extended, events=events
        )
        mapcache.on_change.append(self._map_changed)
        membership.contributors.append(self)

    def handlers(self) -> Sequence[Handler]:
        return (Handler(LogRequest, Allow.ANY, self._log_tail),)

    def loops(self) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
        return (self.keeper.renewals, self._reconciler)

    def heartbeat_fields(self) -> Mapping[str, object]:
        now = self.ctx.clock.monotonic()
        return {"containers": tuple(self._summary(s, now) for s in self.slots.values())}

    def _summary(self, slot: Slot, now: float) -> ContainerSummary:
        up = now - slot.started_at if slot.instance is not None else 0.0
        return ContainerSummary(
            name=slot.name,
            generation=slot.generation,
            state=slot.state,
            pid=slot.instance.pid if slot.instance is not None else 0,
            restarts=slot.restarts,
            exit_code=slot.exit_code,
            address=slot.info.spec.address,
            uptime_s=round(up, 3),
        )

    # ---- the lease ---------------------------------------------------------------------

    def _extended(self, gained: bool) -> None:
        """A renewal made the lease longer (``gained``: after having none)."""
        self.watchdog.arm(self.holder.stop_by)
        self.switch.reset()
        if gained:
            self._wake.set()

    def _tripped(self, killed: list[tuple[str, int]]) -> None:
        """The watchdog's thread (or the loop) killed every container: note it on the loop."""
        for name, generation in killed:
            self.events("container_fenced", container=name, generation=generation)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fenced, len(killed))

    def _fenced(self, count: int) -> None:
        if count:
            self.log.warning("the lease ran out: killed %d container(s)", count)
        for slot in self.slots.values():
            if slot.instance is not None:
                slot.state = "fenced"
                if slot.info.spec.address:  # give it up, so no two nodes answer for it
                    self.ctx.spawn(self.compute.addresses.remove(slot.info.spec.address))
        self._wake.set()

    # ---- reconciling -------------------------------------------------------------------

    def _map_changed(self, cmap: ClusterMap) -> None:
        me = cmap.nodes.get(self.ctx.me.name)
        if me is not None and me.state != "up" and self.holder.holds(self.ctx.clock.monotonic()):
            self.log.warning("the map says this node is %s: stopping its containers", me.state)
            self.holder.drop()
            self.switch.trip()
        self._wake.set()

    async def _reconciler(self) -> None:
        self._loop = asyncio.get_running_loop()  # the watchdog's thread wakes it
        while True:
            try:
                async with self.ctx.clock.timeout(RECONCILE_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self._reconcile()

    def wanted(self) -> dict[str, ContainerInfo] | None:
        """What should run here now; None while the map is older than the lease's (wait)."""
        cmap = self.mapcache.cmap
        me = self.ctx.me.name
        if cmap is None or cmap.epoch < self.holder.epoch:
            return None
        node = cmap.nodes.get(me)
        if node is None or node.state != "up":
            return {}
        return {
            name: info
            for name, info in cmap.containers.items()
            if info.node == me and info.want == "running"
        }

    async def _reconcile(self) -> None:
        now = self.ctx.clock.monotonic()
        if not self.holder.holds(now):
            self.switch.trip()
        wanted = self.wanted()
        if wanted is None:
            return
        for name, slot in list(self.slots.items()):
            info = wanted.get(name)
            if info is None or info.generation != slot.generation:
                self._retire(slot)
            elif info != slot.info:
                slot.info = info  # same generation, new spec fields: applied at next start
        for name, info in wanted.items():
            current = self.slots.get(name)
            if current is None:
                current = self.slots[name] = Slot(info=info)
            if self._may_start(current, now):
                await self._start(current)

    def _may_start(self, slot: Slot, now: float) -> bool:
        return (
            slot.instance is None
            and not slot.retiring
            and not slot.done
            and now >= slot.retry_at
            and not self.switch.tripped
            and self.holder.holds(now, ahead=START_AHEAD_S)
        )

    def _retire(self, slot: Slot) -> None:
        """It is not ours to run any more (moved, stopped or removed): stop it, forget it."""
        if slot.retiring:
            return
        slot.retiring = True
        self.ctx.spawn(self._stop_and_forget(slot))

    async def _stop_and_forget(self, slot: Slot) -> None:
        try:
            if slot.instance is not None:
                slot.state = "stopping"
                await slot.instance.stop(STOP_GRACE_S)
            if slot.info.spec.address:
                await self.compute.addresses.remove(slot.info.spec.address)
        finally:
            if self.slots.get(slot.name) is slot:
                del self.slots[slot.name]
            self._wake.set()

    async def _start(self, slot: Slot) -> None:
        info = slot.info
        spec = info.spec
        run = RunSpec(
            name=spec.name,
            generation=info.generation,
            argv=spec.command,
            env=self._env(info),
            log_path=self.state_dir / f"{spec.name}.log",
            scope=self.scope,
            memory_bytes=spec.memory_bytes,
            cpu_millis=spec.cpu_millis,
            hostname=spec.name,
            pidfile=self.state_dir / f"{spec.name}.pid",
        )
        slot.state = "starting"
        try:
            if spec.address:
                await self.compute.addresses.add(spec.address)
            instance = await self.compute.runtime.start(run)
        except RackError as exc:
            self.log.warning("%s", exc)
            self.events("container_failed", container=spec.name, generation=info.generation)
            slot.state = "failed"
            slot.restarts += 1
            self._back_off(slot)
            return
        if not self.switch.add(spec.name, info.generation, instance):
            # the lease ended while it started: it was killed as it registered
            self.events("container_fenced", container=spec.name, generation=info.generation)
            slot.state = "fenced"
            self.ctx.spawn(self._reap(instance, spec.address))
            return
        slot.instance = instance
        slot.state = "running"
        slot.started_at = self.ctx.clock.monotonic()
        self.events(
            "container_start", container=spec.name, generation=info.generation, pid=instance.pid
        )
        self.log.info("started container %s generation %d", spec.name, info.generation)
        self.ctx.spawn(self._watch(slot, instance))

    async def _reap(self, instance: ContainerInstance, address: str | None) -> None:
        """Collect a killed instance nobody watches, and give up its address."""
        await instance.wait()
        if address:
            await self.compute.addresses.remove(address)

    def _env(self, info: ContainerInfo) -> dict[str, str]:
        spec = info.spec
        conf = self.ctx.conf
        bin_dir = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.state_dir),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "RACK_CONTAINER": spec.name,
            "RACK_GENERATION": str(info.generation),
            "RACK_NODE": conf.node,
        }
        if spec.address:
            env["RACK_ADDRESS"] = spec.address
        if spec.volume:
            env["RACK_VOLUME"] = spec.volume
        if conf.compute.client_conf:
            env["RACK_CONF"] = conf.compute.client_conf
        return {**env, **spec.env}

    async def _watch(self, slot: Slot, instance: ContainerInstance) -> None:
        code = await instance.wait()
        self.switch.remove(slot.name, instance)
        if slot.instance is not instance:
            return
        slot.instance = None
        slot.exit_code = code
        self.events("container_stop", container=slot.name, generation=slot.generation, code=code)
        now = self.ctx.clock.monotonic()
        if slot.retiring:
            slot.state = "stopped"
        elif slot.state == "fenced" or self.switch.tripped:
            slot.state = "fenced"
        else:
            self._exited(slot, code, now)
        self._wake.set()

    def _exited(self, slot: Slot, code: int, now: float) -> None:
        policy = slot.info.spec.restart
        slot.state = "exited" if code == 0 else "failed"
        self.log.warning("container %s exited with status %d", slot.name, code)
        if policy == "never" or (policy == "on-failure" and code == 0):
            slot.done = True
            return
        if now - slot.started_at >= STEADY_S:
            slot.backoff = BACKOFF_FIRST_S
        slot.restarts += 1
        self._back_off(slot)

    def _back_off(self, slot: Slot) -> None:
        slot.retry_at = self.ctx.clock.monotonic() + slot.backoff
        slot.backoff = min(slot.backoff * 2, BACKOFF_MAX_S)

    # ---- logs --------------------------------------------------------------------------

    def _log_tail(self, inc: Incoming) -> Reply:
        req: LogRequest = inc.msg
        path = self.state_dir / f"{req.container}.log"
        if "/" in req.container or not path.is_file():
            return LogReply(rid=req.rid, found=False), ()
        size = max(0, min(req.max_bytes, MAX_LOG_BYTES))
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            data = f.read(size)
        return LogReply(rid=req.rid, found=True), (data,)

    def close(self) -> None:
        self.switch.trip()
        self.watchdog.close()
