"""Monitor figures on a lab rack: leader failover and commit latency of map changes.

Prints one JSON object. Usage: python bench/monitors.py [--tries 10] [--commits 200] [--mode auto]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq

from agent.clustermap import CreatePool, DeletePool, encode_command
from agent.errors import RackError
from agent.lab import Lab, choose_mode
from agent.lab.measure import seconds_until_seen
from agent.node.security import make_curve_client
from agent.wire import ProposeReply, ProposeRequest, decode, encode


def leader(lab: Lab) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            quorum = lab.status_of("n5").quorum
        except RackError:
            quorum = None
        if quorum is not None and quorum.leader:
            return quorum.leader
        time.sleep(0.05)
    raise RackError("no leader within 30 s")


def _watch_election(lab: Lab, watcher: str, old: str, t0: float, out: list[float]) -> None:
    """Poll one survivor every 5 ms until it names a new leader (its own thread, so the
    writes below, which can block for their whole deadline, do not delay the reading)."""
    while time.monotonic() - t0 < 30:
        with contextlib.suppress(RackError):
            quorum = lab.status_of(watcher, timeout=0.2).quorum
            if quorum is not None and quorum.leader not in (None, old):
                out.append(time.monotonic() - t0)
                return
        time.sleep(0.005)


def failover_once(lab: Lab, attempt: int) -> tuple[float, float]:
    """Kill the leader; seconds until a survivor names a new leader, and until a write
    sent through a non-monitor node commits (retried every 0.25 s at most)."""
    old = leader(lab)
    watcher = next(m for m in ("n1", "n2", "n3") if m != old)
    elected: list[float] = []
    t0 = time.monotonic()
    lab.kill(old)
    watch = threading.Thread(target=_watch_election, args=(lab, watcher, old, t0, elected))
    watch.start()
    with lab.client(only="n5") as client:
        while True:
            try:
                reply = client.propose(
                    CreatePool(name=f"failover-{attempt}", k=2, m=1), timeout=0.25
                )
            except RackError:
                continue
            if reply.refused is None:
                break
    committed = time.monotonic() - t0
    watch.join()
    lab.boot(old)
    seconds_until_seen(lab, old, "up", ["n5"])
    return elected[0] if elected else committed, committed


def commit_latencies(lab: Lab, count: int) -> list[float]:
    """Sequential map changes on one connection to the leader, as the leader's clients see them."""
    name = leader(lab)
    with lab.client() as client:
        ep = next(e for e in client.endpoints() if e.name == name)
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        make_curve_client(sock, client.me, ep.public_key)
        sock.connect(f"tcp://{ep.address}:{ep.rpc_port}")
        out = []
        try:
            for i in range(count):
                cmd = (
                    CreatePool(name="latency", k=2, m=1)
                    if i % 2 == 0
                    else DeletePool(name="latency")
                )
                t0 = time.perf_counter()
                sock.send_multipart(encode(ProposeRequest(rid=i), (encode_command(cmd),)))
                reply, _ = decode(sock.recv_multipart())
                out.append(time.perf_counter() - t0)
                if not isinstance(reply, ProposeReply) or reply.refused:
                    raise RackError(f"commit {i} failed: {reply}")
        finally:
            ctx.destroy(linger=0)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--mode", default="auto", choices=["auto", "netns", "loopback"])
    args = parser.parse_args()
    mode = choose_mode(args.mode)
    with tempfile.TemporaryDirectory(prefix="rack-bench-") as tmp:
        lab = Lab(Path(tmp) / "lab")
        lab.up(5, mode)
        try:
            runs = [failover_once(lab, i) for i in range(args.tries)]
            elections = [r[0] for r in runs]
            failovers = [r[1] for r in runs]
            lat = commit_latencies(lab, args.commits)
        finally:
            lab.down()
    out = {
        "bench": "monitors",
        "mode": mode,
        "nodes": 5,
        "monitors": 3,
        "raft_tick_s": 0.05,
        "election_ticks": 10,
        "leader_kill_to_new_leader_s": {
            "median": round(statistics.median(elections), 3),
            "max": round(max(elections), 3),
            "min": round(min(elections), 3),
            "tries": len(elections),
        },
        "leader_kill_to_commit_s": {
            "median": round(statistics.median(failovers), 3),
            "max": round(max(failovers), 3),
            "min": round(min(failovers), 3),
            "tries": len(failovers),
        },
        "commit_latency_ms": {
            "median": round(1000 * statistics.median(lat), 2),
            "p99": round(1000 * pct(lat, 99), 2),
            "max": round(1000 * max(lat), 2),
            "commits": len(lat),
            "note": "one client connection to the leader; "
            "includes the log fsync of the leader and of one follower",
        },
    }
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
