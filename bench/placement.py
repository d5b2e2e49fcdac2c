"""Placement bench: balance, movement and speed of straw2 + the upmap balancer.

Run: ``.venv/bin/python bench/placement.py``. Prints one JSON object, asserts nothing.

Scenarios: (a) 100 hosts x 10 OSDs of mixed 1/2/4/8 TB drives (seeded), 16384 PGs of a
4+2 pool, host failure domain (~100 shards per OSD); (b) one rack of 10 hosts x 4 OSDs,
1024 PGs of a 3+2 pool. Load is weighted: shards / bytes, max over mean.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# Run from a checkout: use this tree's agent package, whatever the venv points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.placement import (
    Osd,
    OsdState,
    Placement,
    PoolSpec,
    Tree,
    balance,
    max_over_mean,
    place,
)

TB = 10**12
DRIVES = (1, 2, 4, 8)


def build(hosts: int, per_host: int, hosts_per_rack: int, seed: int) -> Tree:
    rng = np.random.default_rng(seed)
    osds = [
        Osd(
            h * per_host + j,
            f"h{h:03d}",
            f"r{h // hosts_per_rack:02d}",
            int(rng.choice(DRIVES)) * TB,
        )
        for h in range(hosts)
        for j in range(per_host)
    ]
    return Tree.of(osds)


def new_host(tree: Tree, per_host: int, rack: str, seed: int) -> list[Osd]:
    rng = np.random.default_rng(seed)
    first = max(o.id for o in tree.osds) + 1
    return [Osd(first + j, "hnew", rack, int(rng.choice(DRIVES)) * TB) for j in range(per_host)]


def moved(a: Placement, b: Placement) -> int:
    return int((a.osds != b.osds).sum())


def best_of(runs: int, fn: Any) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(min(times), 4)


def scenario(tree: Tree, pool: PoolSpec, per_host: int, rack: str) -> dict[str, Any]:
    shards = pool.pg_count * pool.size
    raw = place(tree, pool)
    start = time.perf_counter()
    ups = balance(tree, pool)
    balance_seconds = round(time.perf_counter() - start, 3)
    bal = place(tree, pool, ups)
    map_seconds = best_of(3, lambda: place(tree, pool, ups))
    map_seconds_raw = best_of(3, lambda: place(tree, pool))

    # Add one host (drives drawn from the same mix).
    extra = new_host(tree, per_host, rack, seed=4242)
    grown = tree.with_osds(extra)
    new_weight = sum(o.weight for o in extra)
    minimum = shards * new_weight / sum(o.weight for o in grown.osds)
    raw_grown = place(grown, pool)
    new_ids = np.array([o.id for o in extra])
    bal_grown = place(grown, pool, ups)
    ups_grown = balance(grown, pool, ups)
    rebal_grown = place(grown, pool, ups_grown)

    # Mark the fullest OSD of the balanced map out.
    counts = bal.shard_counts()
    victim = max(counts, key=lambda o: (counts[o], -o))
    shrunk = tree.with_state(victim, OsdState.OUT)
    bal_out = place(shrunk, pool, ups)
    raw_out = place(shrunk, pool)
    ups_out = balance(shrunk, pool, ups)
    rebal_out = place(shrunk, pool, ups_out)
    changed = bal.osds != bal_out.osds

    return {
        "osds": len(tree.osds),
        "hosts": len(tree.domains("host")),
        "pgs": pool.pg_count,
        "code": f"{pool.k}+{pool.m}",
        "failure_domain": pool.domain,
        "shards": shards,
        "shards_per_osd": round(shards / len(tree.osds), 1),
        "map_seconds": map_seconds,
        "map_seconds_raw": map_seconds_raw,
        "balance_seconds": balance_seconds,
        "max_mean_raw": round(max_over_mean(tree, raw), 4),
        "max_mean_balanced": round(max_over_mean(tree, bal), 4),
        "upmap_items": len(ups),
        "add_host_weight_tb": new_weight // TB,
        "add_host_min": round(minimum, 1),
        "add_host_moved": moved(raw, raw_grown),
        "add_host_onto_new": int(np.isin(raw_grown.osds, new_ids).sum()),
        "add_host_moved_ratio": round(moved(raw, raw_grown) / minimum, 4),
        "add_host_moved_ratio_balanced": round(moved(bal, bal_grown) / minimum, 4),
        "add_host_rebalance_moved": moved(bal_grown, rebal_grown),
        "add_host_moved_ratio_rebalanced": round(moved(bal, rebal_grown) / minimum, 4),
        "add_host_max_mean_rebalanced": round(max_over_mean(grown, rebal_grown), 4),
        "out_osd": victim,
        "out_osd_shards": counts[victim],
        "out_osd_moved": int(changed.sum()),
        "out_osd_moved_other": int((changed & (bal.osds != victim)).sum()),
        "out_osd_moved_other_raw": int(((raw.osds != raw_out.osds) & (raw.osds != victim)).sum()),
        "out_osd_max_mean": round(max_over_mean(shrunk, bal_out), 4),
        "out_osd_rebalance_moved": moved(bal_out, rebal_out),
        "out_osd_max_mean_rebalanced": round(max_over_mean(shrunk, rebal_out), 4),
    }


def main() -> None:
    big = build(hosts=100, per_host=10, hosts_per_rack=10, seed=2024)
    rack = build(hosts=10, per_host=4, hosts_per_rack=10, seed=2025)
    out = {
        "bench": "placement",
        "command": ".venv/bin/python bench/placement.py",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "a_1000_osds": scenario(big, PoolSpec(1, 4, 2, 16384), per_host=10, rack="r09"),
        "b_one_rack": scenario(rack, PoolSpec(2, 3, 2, 1024), per_host=4, rack="r00"),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
