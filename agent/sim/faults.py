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


class Probe:
    """Pull the power of one node (or cut it off) and time the vote."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def run(self, calm_after: float) -> None:
        w = self.world
        # messages sent before the heal may still be on their way, as slow as they were
        await asyncio.sleep(max(0.0, calm_after - w.loop.time()))
        victim = w.rng.choice(w.names)
        isolate = w.rng.random() < 0.5
        start = w.loop.time()
        w.checker.attempts = 0
        voted: asyncio.Future[float] = w.loop.create_future()

        def on_down(name: str, at: float) -> None:
            if name == victim and not voted.done():
                voted.set_result(at)

        w.checker.on_down = on_down
        if isolate:
            for other in w.names:
                if other != victim:
                    w.net.cut(victim, other)
                    w.net.cut(other, victim)
        else:
            w.kill(victim)
        w.event(f"probe: {'cut off' if isolate else 'pull the power of'} {victim}")
        try:
            async with asyncio.timeout(w.cfg.probe_timeout_s):
                took = await voted - start
        except TimeoutError:
            raise w.checker.fail(
                f"{victim} was not voted down within {w.cfg.probe_timeout_s:g} s"
            ) from None
        finally:
            w.checker.on_down = None
        bound = w.bound.seconds(w.checker.attempts)
        w.stats.probe_seconds.append(round(took, 4))
        w.stats.probe_bounds.append(round(bound, 4))
        w.event(f"probe: {victim} voted down after {took:.3f} s (bound {bound:.3f} s)")
        if took > bound:
            raise w.checker.fail(
                f"{victim} was voted down {took:.3f} s after it went, over the bound of "
                f"{bound:.3f} s ({w.checker.attempts} election attempts)"
            )
        w.net.heal()
        w.boot(victim)
        await w.wait_formed(
            f"the rack did not form again within {w.cfg.form_within_s:g} s of the probe"
        )
