"""Running seeds: one, replayed exactly, or many, in one or more processes."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from agent.config import TimingConfig
from agent.core.lease import LeaseTable
from agent.core.vote import VoteTally
from agent.node.env import default_tally
from agent.sim.checker import Violation
from agent.sim.world import SimConfig, SimStats, World

TallyFactory = Callable[[TimingConfig], VoteTally]
LeaseTableFactory = Callable[..., LeaseTable]


def run_seed(
    seed: int,
    config: SimConfig | None = None,
    *,
    tally_factory: TallyFactory = default_tally,
    lease_table_factory: LeaseTableFactory = LeaseTable,
    trace: Callable[[str], None] | None = None,
) -> SimStats:
    """One seeded run; raises :class:`Violation` at the first broken invariant."""
    world = World(
        seed,
        config,
        tally_factory=tally_factory,
        lease_table_factory=lease_table_factory,
        trace=trace,
    )
    try:
        return world.run()
    except Violation:
        raise
    except Exception as exc:  # a crash of the node code under simulation is a finding too
        raise Violation(seed, world.loop.time(), f"unexpected {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Summary:
    seeds: int
    violations: int
    runs_per_s: float
    first_failing_seed: int | None
    first_violation: str | None
    probe_median_s: float | None
    probe_max_s: float | None
    probe_min_margin_s: float | None
    """Smallest gap between a probe's time and its bound (how close the bound came)."""
    failover_median_s: float | None
    failover_max_s: float | None
    """From taking a container's node away to a new instance running (simulated)."""
    container_starts: int
    virtual_s: float

    def as_json(self) -> dict[str, object]:
        return asdict(self)


Work = tuple[int, int, TallyFactory, LeaseTableFactory]


def _chunk(args: Work) -> tuple[list[tuple[int, str]], list[SimStats]]:
    start, count, tally, leases = args
    failures: list[tuple[int, str]] = []
    stats: list[SimStats] = []
    for seed in range(start, start + count):
        try:
            stats.append(run_seed(seed, tally_factory=tally, lease_table_factory=leases))
        except Violation as exc:
            failures.append((seed, str(exc)))
    return failures, stats


def run_seeds(
    seeds: int,
    start: int = 0,
    jobs: int = 1,
    tally_factory: TallyFactory = default_tally,
    lease_table_factory: LeaseTableFactory = LeaseTable,
) -> Summary:
    began = time.perf_counter()
    size = max(1, min(25, seeds // max(1, jobs * 4)))
    work: list[Work] = [
        (s, min(size, start + seeds - s), tally_factory, lease_table_factory)
        for s in range(start, start + seeds, size)
    ]
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results: Sequence[tuple[list[tuple[int, str]], list[SimStats]]] = pool.map(_chunk, work)
    else:
        results = [_chunk(w) for w in work]
    failures = sorted(f for r in results for f in r[0])
    stats = [s for r in results for s in r[1]]
    secs = time.perf_counter() - began
    probes = sorted(p for s in stats for p in s.probe_seconds)
    margins = [b - p for s in stats for p, b in zip(s.probe_seconds, s.probe_bounds, strict=True)]
    failovers = sorted(f for s in stats for f in s.failover_seconds)
    return Summary(
        seeds=seeds,
        violations=len(failures),
        runs_per_s=round(seeds / secs, 2) if secs else 0.0,
        first_failing_seed=failures[0][0] if failures else None,
        first_violation=failures[0][1] if failures else None,
        probe_median_s=probes[len(probes) // 2] if probes else None,
        probe_max_s=probes[-1] if probes else None,
        probe_min_margin_s=round(min(margins), 4) if margins else None,
        failover_median_s=failovers[len(failovers) // 2] if failovers else None,
        failover_max_s=failovers[-1] if failovers else None,
        container_starts=sum(s.container_starts for s in stats),
        virtual_s=round(sum(s.virtual_s for s in stats), 1),
    )
