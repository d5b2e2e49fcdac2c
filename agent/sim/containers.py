"""Containers in the simulated rack: create them, wait for them, and fail their nodes.

After the rack forms, a few containers are created through the leader. Chaos then strikes
as always; the ledger checks at every start that no container runs twice. After the heal
every container must run again (exactly once, at the map's generation), and each failover
probe takes a container's node away (its power, its link, its link together with the
leader's, or two nodes' power at once) and times how long until a new instance runs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agent.clustermap import ClusterMap, ContainerSpec, PutContainer
from agent.errors import RackError

if TYPE_CHECKING:
    from agent.sim.world import World

POLL_S = 0.02
MIB = 1024 * 1024


def leader_map(world: World) -> ClusterMap | None:
    best = None
    for node in world.nodes.values():
        mon = node.services.monitor
        if mon is not None and mon.leads and (best is None or mon.term > best.term):
            best = mon
    return best.cmap if best is not None else None


def leader_name(world: World) -> str | None:
    for name, node in world.nodes.items():
        mon = node.services.monitor
        if mon is not None and mon.leads:
            return name
    return None


async def create_containers(world: World) -> None:
    for i in range(1, world.cfg.containers + 1):
        spec = ContainerSpec(
            name=f"c{i}",
            command=("serve",),
            memory_bytes=512 * MIB,
            anti_affinity="pair" if i <= 2 else None,
        )
        await _propose(world, PutContainer(spec=spec))


async def _propose(world: World, cmd: PutContainer) -> None:
    deadline = world.loop.time() + world.cfg.form_within_s
    while world.loop.time() < deadline:
        name = leader_name(world)
        monitor = world.nodes[name].services.monitor if name else None
        if monitor is not None:
            try:
                applied = await monitor.propose(cmd, 2.0)
            except RackError:
                applied = None
            if applied is not None:
                if applied.ok or "already exists" in (applied.refused or ""):
                    return
                raise world.checker.fail(f"the map refused {cmd.spec.name}: {applied.refused}")
        await asyncio.sleep(0.1)
    raise world.checker.fail(f"container {cmd.spec.name} could not be created")


async def wait_containers(world: World) -> None:
    """Liveness: every container runs, once, at its map generation, on its map node."""
    deadline = world.loop.time() + world.cfg.form_within_s
    while True:
        cmap = leader_map(world)
        missing = _not_running(world, cmap)
        if not missing:
            return
        if world.loop.time() > deadline:
            raise world.checker.fail(
                f"containers did not all run within {world.cfg.form_within_s:g} s: "
                + "; ".join(missing)
            )
        await asyncio.sleep(POLL_S)


def _not_running(world: World, cmap: ClusterMap | None) -> list[str]:
    if cmap is None:
        return ["no leader"]
    out = []
    for name, info in sorted(cmap.containers.items()):
        runs = world.ledger.running(name)
        where = [(r.node, r.generation) for r in runs]
        if where != [(info.node, info.generation)]:
            out.append(
                f"{name} is assigned to {info.node} at generation {info.generation}, runs {where}"
            )
    return out


class FailoverProbe:
    """Take away the node of ``c1`` on a calm network and time the failover."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def run(self) -> None:
        w = self.world
        await wait_containers(w)
        cmap = leader_map(w)
        assert cmap is not None
        info = cmap.containers["c1"]
        victim = info.node
        assert victim is not None
        kind = w.rng.choice(("kill", "isolate", "isolate-with-leader", "kill-two"))
        victims = self._strike(kind, victim)
        start = w.loop.time()
        w.event(f"failover probe: {kind} {victims} (c1 runs on {victim})")
        while True:
            moved = [r for r in w.ledger.running("c1") if r.generation > info.generation]
            if moved:
                gap = moved[0].started - start
                break
            if w.loop.time() - start > w.cfg.probe_timeout_s:
                raise w.checker.fail(
                    f"c1 did not start again within {w.cfg.probe_timeout_s:g} s of the probe "
                    f"({kind} {victims})"
                )
            await asyncio.sleep(POLL_S)
        w.stats.failover_seconds.append(round(gap, 4))
        w.event(f"failover probe: c1 runs on {moved[0].node} after {gap:.3f} s")
        w.net.heal()
        for name in victims:
            w.boot(name)
        await w.wait_formed("the rack did not form again after a failover probe")
        await wait_containers(w)

    def _strike(self, kind: str, victim: str) -> list[str]:
        w = self.world
        if kind == "kill":
            w.kill(victim)
            return [victim]
        if kind == "kill-two":
            monitors = set(w.monitor_names)
            others = [
                n
                for n in w.names
                if n != victim and len(monitors - {victim, n}) * 2 > len(monitors)
            ]
            second = w.rng.choice(others)
            w.kill(victim)
            w.kill(second)
            return [victim, second]
        group = [victim]
        leader = leader_name(w)
        monitors = set(w.monitor_names)
        rest_has_majority = len(monitors - {victim, leader or victim}) * 2 > len(monitors)
        if kind == "isolate-with-leader" and leader not in (None, victim) and rest_has_majority:
            group.append(leader)  # (else the rest would have no majority of monitors)
        for a in group:
            for b in w.names:
                if b not in group:
                    w.net.cut(a, b)
                    w.net.cut(b, a)
        return group
