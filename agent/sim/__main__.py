"""``python -m agent.sim``: the whole-node simulation of a 5-node rack (docs/simulation.md).

python -m agent.sim --seeds 300 [--jobs 2] [--json]     many seeds, a summary
python -m agent.sim --seed 17 [--trace]                 replay one seed exactly
python -m agent.sim --seeds 50 --broken single-report-vote   show the checker catch it
python -m agent.sim --seeds 50 --broken lease-wait           (a lease the monitors do not wait out)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from functools import partial

from agent.core.lease import LeaseTable
from agent.node.env import default_tally
from agent.sim.broken import BROKEN, BROKEN_LEASES, broken_tally
from agent.sim.checker import Violation
from agent.sim.run import LeaseTableFactory, TallyFactory, run_seed, run_seeds


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.sim", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=0, help="run this many seeds")
    p.add_argument("--start", type=int, default=0, help="first seed of --seeds")
    p.add_argument("--seed", type=int, help="replay exactly this seed")
    p.add_argument("--trace", action="store_true", help="with --seed: print every event")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for --seeds")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument(
        "--broken",
        choices=sorted([*BROKEN, *BROKEN_LEASES]),
        help="run a deliberately broken vote or lease",
    )
    a = p.parse_args(argv)
    tally: TallyFactory = partial(broken_tally, a.broken) if a.broken in BROKEN else default_tally
    leases: LeaseTableFactory = BROKEN_LEASES.get(a.broken, LeaseTable)
    if a.seed is not None:
        return _replay(a.seed, tally, leases, trace=a.trace)
    if a.seeds <= 0:
        p.error("give --seeds N or --seed S")
    summary = run_seeds(
        a.seeds, start=a.start, jobs=a.jobs, tally_factory=tally, lease_table_factory=leases
    )
    if a.json:
        out = {
            k: summary.as_json()[k]
            for k in ("seeds", "violations", "runs_per_s", "first_failing_seed")
        }
        print(json.dumps(out))
    else:
        print(json.dumps(summary.as_json(), indent=2))
    return 1 if summary.violations else 0


def _replay(seed: int, tally: TallyFactory, leases: LeaseTableFactory, *, trace: bool) -> int:
    began = time.perf_counter()
    try:
        stats = run_seed(
            seed, tally_factory=tally, lease_table_factory=leases, trace=print if trace else None
        )
    except Violation as exc:
        print(json.dumps({"seed": seed, "ok": False, "violation": str(exc)}))
        return 1
    out = {"seed": seed, "ok": True, "seconds": round(time.perf_counter() - began, 3)}
    print(json.dumps({**out, **dataclasses.asdict(stats)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
