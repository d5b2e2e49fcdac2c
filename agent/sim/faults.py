"""The faults of a simulated run: the chaos phase, and the probes that time the vote.

Chaos: per seed, a fault profile (how often nodes are killed and rebooted, links cut and
healed, how lossy and slow the network is), applied every ``FAULT_TICK_S``. A probe, on a
calm network after the heal: pull one node's power or cut it off, and time how long until
``down`` is committed, against :func:`agent.sim.bounds.down_bound`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agent.sim.network import CALM, NetProfile

if TYPE_CHECKING:
    from agent.sim.world import World

FAULT_TICK_S = 0.1


class Chaos:
    def __init__(self, world: World) -> None:
        self.world = world
        self.profiles = self._draw_profiles()
        self.calm_after = 0.0
        """When every message sent on a chaos profile has surely arrived or been lost."""

    def _draw_profiles(self) -> list[NetProfile]:
        rng = self.world.rng
        return [
            NetProfile(
                drop=rng.choice((0.0, 0.01, 0.05, 0.2)),
                dup=rng.choice((0.0, 0.01, 0.05)),
                delay_min=0.0005,
                delay_max=rng.choice((0.005, 0.02, 0.1, 0.3)),
            )
            for _ in range(3)
        ]

    async def run(self) -> None:
        rng = self.world.rng
        p_kill = rng.choice((0.0, 0.005, 0.02))
        p_reboot = rng.choice((0.02, 0.1))
        p_cut = rng.choice((0.0, 0.01, 0.04))
        p_heal = rng.choice((0.03, 0.1))
        self.world.net.profile = rng.choice(self.profiles)
        self.world.event(f"chaos: {self.world.net.profile} kill {p_kill} cut {p_cut}")
        end = self.world.loop.time() + self.world.cfg.chaos_s
        while self.world.loop.time() < end:
            await asyncio.sleep(FAULT_TICK_S)
            up, down = (
                self.world.running(),
                [n for n in self.world.names if n not in self.world.nodes],
            )
            if up and rng.random() < p_kill:
                self.world.kill(rng.choice(up))
            if down and rng.random() < p_reboot:
                self.world.stats.reboots += 1
                self.world.boot(rng.choice(down))
            if not self.world.net.blocked and rng.random() < p_cut:
                self._cut()
            elif self.world.net.blocked and rng.random() < p_heal:
                self.world.net.heal()
                self.world.event("heal the network")
            if rng.random() < 0.02:
                self.world.net.profile = rng.choice(self.profiles)
                self.world.event(f"network now {self.world.net.profile}")

    def _cut(self) -> None:
        rng, names = self.world.rng, self.world.names
        kind = rng.choice(("isolate", "split", "one-way", "one-link", "one-link"))
        self.world.stats.partitions += 1
        if kind == "isolate":
            victim = rng.choice(names)
            for other in names:
                if other != victim:
                    self.world.net.cut(victim, other)
                    self.world.net.cut(other, victim)
            what = f"isolate {victim}"
        elif kind == "split":
            order = names[:]
            rng.shuffle(order)
            small = order[: rng.randint(1, len(order) // 2)]
            for a in small:
                for b in order:
                    if b not in small:
                        self.world.net.cut(a, b)
                        self.world.net.cut(b, a)
            what = f"split {sorted(small)} from the rest"
        elif kind == "one-way":
            for a in names:
                for b in names:
                    if a != b and rng.random() < 0.25:
                        self.world.net.cut(a, b)
            what = f"one-way cuts {sorted(self.world.net.blocked)}"
        else:
            a, b = rng.sample(names, 2)
            self.world.net.cut(a, b)
            what = f"cut the link {a} -> {b}"
        self.world.event(what)

    def heal_all(self) -> None:
        self.world.net.heal()
        self.world.net.profile = CALM
        self.calm_after = self.world.loop.time() + max(p.delay_max for p in self.profiles)
        for name in self.world.names:
            if name not in self.world.nodes:
                self.world.boot(name)
        self.world.event("heal everything, calm network, boot every node")

    # ---- liveness and the bound --------------------------------------------------------


class Probe:
    """Pull the power of one node (or cut it off) and time the vote."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def run(self, calm_after: float) -> None:
        # messages sent before the heal may still be on their way, as slow as they were
        await asyncio.sleep(max(0.0, calm_after - self.world.loop.time()))
        victim = self.world.rng.choice(self.world.names)
        isolate = self.world.rng.random() < 0.5
        start = self.world.loop.time()
        self.world.checker.attempts = 0
        seen = len(self.world.checker.downs)
        if isolate:
            for other in self.world.names:
                if other != victim:
                    self.world.net.cut(victim, other)
                    self.world.net.cut(other, victim)
        else:
            self.world.kill(victim)
        self.world.event(f"probe: {'cut off' if isolate else 'pull the power of'} {victim}")
        while not any(n == victim for _, n in self.world.checker.downs[seen:]):
            if self.world.loop.time() - start > self.world.cfg.probe_timeout_s:
                raise self.world.checker.fail(
                    f"{victim} was not voted down within {self.world.cfg.probe_timeout_s:g} s"
                )
            await asyncio.sleep(0.001)
        took = next(t for t, n in self.world.checker.downs[seen:] if n == victim) - start
        bound = self.world.bound.seconds(self.world.checker.attempts)
        self.world.stats.probe_seconds.append(round(took, 4))
        self.world.stats.probe_bounds.append(round(bound, 4))
        self.world.event(f"probe: {victim} voted down after {took:.3f} s (bound {bound:.3f} s)")
        if took > bound:
            raise self.world.checker.fail(
                f"{victim} was voted down {took:.3f} s after it went, over the bound of "
                f"{bound:.3f} s ({self.world.checker.attempts} election attempts)"
            )
        self.world.net.heal()
        self.world.boot(victim)
        await self.world.wait_formed(
            f"the rack did not form again within {self.world.cfg.form_within_s:g} s of the probe"
        )
