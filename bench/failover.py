"""Container failover figures: kill and partition drills in the 5-node lab, a flaky link,
and the simulation's seeds. Prints one JSON object (docs/ha.md; the field names are a
contract other scripts read).

Usage: python bench/failover.py [--kills 20] [--partitions 20] [--flaky-s 60] [--seeds 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from agent.clustermap import ContainerSpec, CreatePool, PutContainer
from agent.config import TimingConfig
from agent.errors import RackError
from agent.lab import Lab
from agent.lab.drill import INCIDENTS_PER_YEAR, Drill, nines
from agent.lab.objects import put_bytes
from agent.workloads.video import make_video

PHASES = ("detection_s", "vote_commit_s", "lease_wait_s", "start_s", "first_answer_s")
FLAKY = {"delay": 0.1, "jitter": 0.05, "loss": 0.05}


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def stream_node(lab: Lab) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for c in lab.status_of("n5").containers:
            if c.name == "stream" and c.state == "running" and c.node:
                return c.node
        time.sleep(0.1)
    raise RackError("the stream container does not run")


def setup(lab: Lab) -> None:
    lab.up(5, "netns")
    with lab.client() as client:
        client.propose(CreatePool(name="vol", k=3, m=2, pg_num=32))
        put_bytes(lab, "vol", "video", make_video(25 * 60, 4096))
        spec = ContainerSpec(
            name="stream",
            command=("rack-demo-stream", "--object", "vol/video"),
            volume="vol/stream/",
        )
        refused = client.propose(PutContainer(spec=spec)).refused
        if refused:
            raise RackError(refused)
    stream_node(lab)


def drills(lab: Lab, kind: str, count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        node = stream_node(lab)
        report = Drill(lab).run(node, kind)
        out.append(report)
        row = report["containers"][0]
        print(
            f"{kind} {i + 1}/{count}: {node} -> {row['to']}, gap {row['gap_s']} s",
            file=sys.stderr,
        )
    return out


def flaky(lab: Lab, seconds: float) -> dict[str, Any]:
    """Impair the stream node's link; count down votes, moves and failed polls."""
    node = stream_node(lab)
    before = {c.name: c.generation for c in lab.status_of("n5").containers}
    address = next(c.address for c in lab.status_of("n5").containers if c.name == "stream")
    failed, polls = 0, 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal failed, polls
        while not stop.wait(0.1):
            polls += 1
            try:
                with urllib.request.urlopen(f"http://{address}:8080/frame", timeout=1.0) as r:
                    r.read()
            except OSError:
                failed += 1

    since = time.monotonic()
    lab.impair(node, FLAKY["delay"], FLAKY["jitter"], FLAKY["loss"])
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(seconds)
    finally:
        stop.set()
        poller.join()
        lab.restore(node)
    events = [e for e in Drill(lab).events() if float(e["t"]) >= since]
    downs = [e for e in events if e.get("kind") == "node_state" and e.get("state") == "down"]
    after = {c.name: c.generation for c in lab.status_of("n5").containers}
    moved = [n for n, g in after.items() if g != before.get(n)]
    fenced = [e for e in events if e.get("kind") == "container_fenced"]
    return {
        "seconds": seconds,
        "node": node,
        **{f"{k}_s" if k != "loss" else k: v for k, v in FLAKY.items()},
        "down_votes": len(downs),
        "failovers": len(moved),
        "fenced": len(fenced),
        "polls": polls,
        "failed_polls": failed,
    }


def loop_lag(lab: Lab, seconds: float) -> dict[str, float]:
    """The agents' event-loop lag from their heartbeats: idle, then under 16 MiB puts."""

    def worst(during: float) -> float:
        top = 0.0
        end = time.monotonic() + during
        while time.monotonic() < end:
            for node in lab.status_of("n5").nodes:
                top = max(top, node.loop_lag_s or 0.0)
            time.sleep(0.2)
        return round(top, 4)

    idle = worst(seconds)
    stop = threading.Event()
    data = bytes(16 * 1024 * 1024)

    def load() -> None:
        i = 0
        while not stop.is_set():
            put_bytes(lab, "vol", f"load/{i % 4}", data)
            i += 1

    loader = threading.Thread(target=load)
    loader.start()
    try:
        busy = worst(seconds)
    finally:
        stop.set()
        loader.join()
    return {"idle_max_s": idle, "under_put_load_max_s": busy}


def simulation(seeds: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "agent.sim", "--seeds", str(seeds), "--jobs", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--partitions", type=int, default=20)
    p.add_argument("--flaky-s", type=float, default=60.0)
    p.add_argument("--seeds", type=int, default=300)
    a = p.parse_args()
    t = TimingConfig()
    with tempfile.TemporaryDirectory(prefix="rack-failover-") as tmp:
        lab = Lab(Path(tmp) / "lab", progress=lambda m: print(m, file=sys.stderr))
        try:
            setup(lab)
            kills = drills(lab, "kill", a.kills)
            parts = drills(lab, "partition", a.partitions)
            flaky_run = flaky(lab, a.flaky_s) if a.flaky_s > 0 else None
            lag = loop_lag(lab, 10.0)
        finally:
            lab.down()
    sim = simulation(a.seeds) if a.seeds > 0 else None
    gaps = [r["gap_s"] for r in kills]
    part_gaps = [r["gap_s"] for r in parts]
    rows = [r["containers"][0] for r in kills]
    part_rows = [r["containers"][0] for r in parts]
    double = sum(1 for r in part_rows if r["old_stopped_before_new_started"] is not True)
    again = sum(1 for r in parts if r.get("restarted_on_old_node"))
    med = median(gaps)
    out = {
        "kills": len(kills),
        "partitions": len(parts),
        "gaps_s": gaps,
        "median_s": med,
        "max_s": max(gaps) if gaps else None,
        "phases_median_s": {
            k: median([r["phases"][k] for r in rows if r["phases"][k] is not None]) for k in PHASES
        },
        "partition_gaps_s": part_gaps,
        "partition_median_s": median(part_gaps),
        "partition_max_s": max(part_gaps) if part_gaps else None,
        "partition_phases_median_s": {
            k: median([r["phases"][k] for r in part_rows if r["phases"][k] is not None])
            for k in PHASES
        },
        "old_stopped_after_cut_median_s": median(
            [r["old_stopped_s"] for r in part_rows if r["old_stopped_s"] is not None]
        ),
        "double_runs": double + again,
        "false_failovers": None if flaky_run is None else flaky_run["failovers"],
        "flaky": flaky_run,
        "loop_lag_s": lag,
        "sim_seeds": None if sim is None else sim["seeds"],
        "sim_violations": None if sim is None else sim["violations"],
        "sim_failover_median_s": None if sim is None else sim.get("failover_median_s"),
        "incidents_per_year": INCIDENTS_PER_YEAR,
        "downtime_per_year_s": None if med is None else round(med * INCIDENTS_PER_YEAR, 3),
        "nines": None if med is None else nines(med * INCIDENTS_PER_YEAR),
        "heartbeat_interval_s": t.heartbeat_interval,
        "grace_s": t.dead_after,
        "lease_ttl_s": t.lease_ttl,
        "lease_renew_s": t.lease_renew,
        "why": (
            "dead after 1.0 s of silence (5 heartbeats of 0.2 s lost in a row); a lease as "
            "long as that detection, so it has all but run out when the vote commits and "
            "waiting for it adds little; renewals every 0.1 s so a lossy link keeps its lease"
        ),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
