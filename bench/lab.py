"""Lab rack figures: time to converge, time to detect a pulled plug, idle CPU of an agent.

Prints one JSON object. Usage: python bench/lab.py [--reps N] [--cpu-seconds S] [--modes ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from agent.config import TimingConfig
from agent.lab import Lab, netns
from agent.lab.measure import idle_cpu_percent, kill_and_time_detection


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def bench_mode(
    mode: str, nodes: int, reps: int, cpu_seconds: float, base: Path
) -> dict[str, object]:
    converge: list[float] = []
    detect_slowest: list[float] = []
    detect_all: list[float] = []
    cpu = None
    for rep in range(reps):
        lab = Lab(base / f"{mode}-{rep}")
        try:
            converge.append(lab.up(nodes, mode))
            if rep == 0 and cpu_seconds > 0:
                cpu = idle_cpu_percent(lab, "n1", cpu_seconds)
            seen = kill_and_time_detection(lab, "n3")
            detect_slowest.append(max(seen.values()))
            detect_all.extend(seen.values())
        finally:
            lab.down()
    t = TimingConfig()
    return {
        "nodes": nodes,
        "up_to_all_see_all_s": summary(converge),
        "kill_to_down_on_every_survivor_s": summary(detect_slowest),
        "kill_to_down_per_survivor_s": summary(detect_all),
        "down_means": "the vote committed 'down' and each survivor's map shows it",
        "heartbeat_interval_s": t.heartbeat_interval,
        "suspect_after_s": t.suspect_after,
        "dead_after_s": t.dead_after,
        "idle_cpu_percent_of_one_core": None if cpu is None else round(cpu, 2),
        "cpu_sample_s": cpu_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--cpu-seconds", type=float, default=10.0)
    parser.add_argument("--modes", nargs="*", default=["loopback", "netns"])
    parser.add_argument("--quick", action="store_true", help="1 rep, 2 s CPU sample")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.cpu_seconds = 1, 2.0
    out: dict[str, object] = {"bench": "lab"}
    with tempfile.TemporaryDirectory(prefix="rack-bench-") as tmp:
        for mode in args.modes:
            if mode == "netns" and (why := netns.available()):
                out[mode] = {"skipped": why}
                continue
            out[mode] = bench_mode(mode, args.nodes, args.reps, args.cpu_seconds, Path(tmp))
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
