"""``make demo``: the summit demo, as far as the product goes today.

Builds a 5-node lab rack, shows it in ``rack top``, creates a 3+2 pool and stores an
object in it, pulls the power of one node, measures how long until the monitors' vote has
marked it down in every survivor's map, and reads the object back degraded; kills the Raft
leader and measures the election; then boots both again and tears the lab down. Container
failover joins this demo with the HA capability.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console, Group

from agent.cli.render import console, nodes_table, summary_line
from agent.clustermap import CreatePool
from agent.data.link import DataLink
from agent.data.objects import ObjectClient
from agent.errors import RackError
from agent.lab import Lab
from agent.lab.measure import kill_and_time_detection

LAB_DIR = Path(".rack-demo")
VICTIM = "n3"
POOL = "demo"
OBJECT = "videos/summit.mp4"
OBJECT_MIB = 32


def _objects(lab: Lab) -> tuple[ObjectClient, DataLink]:
    with lab.client() as client:
        cmap = client.cluster_map()
        me = client.me
    link = DataLink(me)
    return ObjectClient(link, lambda: cmap), link


async def _put(lab: Lab, data: bytes) -> float:
    objects, link = _objects(lab)
    try:
        started = time.monotonic()
        await objects.put(POOL, OBJECT, io.BytesIO(data))
        return time.monotonic() - started
    finally:
        link.close()


async def _get(lab: Lab) -> tuple[bytes, float]:
    objects, link = _objects(lab)
    out = bytearray()
    try:
        started = time.monotonic()
        await objects.get(POOL, OBJECT, out.extend)
        return bytes(out), time.monotonic() - started
    finally:
        link.close()


def store_object(out: Console, lab: Lab) -> bytes:
    """Create a 3+2 pool and put an object in it; read it back and compare."""
    with lab.client() as client:
        reply = client.propose(CreatePool(name=POOL, k=3, m=2, pg_num=32))
    if reply.refused:
        raise RackError(reply.refused)
    data = os.urandom(OBJECT_MIB * 1024 * 1024)
    put_s = asyncio.run(_put(lab, data))
    back, get_s = asyncio.run(_get(lab))
    if back != data:
        raise RackError("the object read back differs from what was stored")
    digest = hashlib.sha256(back).hexdigest()[:16]
    out.print(
        f"\nstored {POOL}/{OBJECT} ({OBJECT_MIB} MiB, 3+2 over 5 hosts) in {put_s:.2f} s "
        f"and read it back in {get_s:.2f} s: sha256 {digest}… matches"
    )
    return data


def degraded_read(out: Console, lab: Lab, data: bytes, gone: str) -> None:
    back, seconds = asyncio.run(_get(lab))
    if back != data:
        raise RackError("the degraded read returned other bytes")
    out.print(
        f"read {POOL}/{OBJECT} with {gone} gone in {seconds:.2f} s: every byte rebuilt from "
        "the surviving shards"
    )


def show(console: Console, lab: Lab, viewer: str, title: str) -> None:
    status = lab.status_of(viewer)
    console.print(Group(summary_line(status), nodes_table(status, title=title)))


def kill_leader(out: Console, lab: Lab) -> tuple[str, str, float]:
    """Pull the Raft leader's power; seconds until the survivors name a new leader."""
    status = lab.status_of("n5")
    leader = status.quorum.leader if status.quorum else None
    if leader is None:
        raise RackError("the rack has no monitor leader")
    out.print(f"\n[bold red]Pulling the power of the leader {leader}[/]")
    started = time.monotonic()
    lab.kill(leader)
    while True:
        with contextlib.suppress(RackError):
            quorum = lab.status_of("n5", timeout=0.3).quorum
            if quorum is not None and quorum.leader not in (None, leader):
                elapsed = time.monotonic() - started
                break
        if time.monotonic() - started > 30:
            raise RackError("no new leader within 30 s")
        time.sleep(0.01)
    show(out, lab, "n5", f"rack top: {quorum.leader} now leads (the vote on {leader} follows)")
    lab.boot(leader)
    return leader, quorum.leader, elapsed


def run(out: Console) -> None:
    lab = Lab(LAB_DIR, progress=lambda m: out.print(m, style="dim"))
    lab.down()  # a previous demo that was interrupted
    out.rule("[bold]Rackcloud demo: a rack that notices a dead node")
    seconds = lab.up(5, "auto")
    out.print(f"5-node lab rack up; every node saw every other after [bold]{seconds:.2f} s[/]")
    try:
        show(out, lab, "n1", "rack top: all nodes heartbeating")
        data = store_object(out, lab)
        out.print(f"\n[bold red]Pulling the power of {VICTIM}[/]: SIGKILL all, link down")
        seen = kill_and_time_detection(lab, VICTIM)
        for viewer, t in sorted(seen.items()):
            out.print(f"  {viewer}'s map shows {VICTIM} down after {t:.2f} s")
        slowest = max(seen.values())
        show(out, lab, "n1", f"rack top: {VICTIM} is down")
        degraded_read(out, lab, data, VICTIM)
        out.print(f"\nBooting {VICTIM} again")
        started = time.monotonic()
        lab.boot(VICTIM)
        back = time.monotonic() - started
        show(out, lab, "n1", f"rack top: {VICTIM} is back with a new incarnation")
        leader, new, elected = kill_leader(out, lab)
        out.rule("[bold]Result")
        out.print(
            f"power pulled -> down by vote on every survivor: "
            f"median {statistics.median(seen.values()):.2f} s, "
            f"slowest {slowest:.2f} s (heartbeat 0.2 s, dead after 1.0 s of silence, then the vote)"
        )
        out.print(f"{VICTIM} booted and seen up by every node {back:.2f} s after power-on")
        out.print(f"leader {leader} killed -> {new} elected and serving after {elected:.2f} s")
        out.print(
            "Next on this stage: fencing and the container restart "
            "(the bar: 12 s at the summit, our goal: under 2 s)."
        )
    finally:
        lab.down()
        out.print("lab down: no process, namespace or link left behind", style="dim")


def main() -> int:
    try:
        run(console())
    except RackError as exc:
        Console(stderr=True).print(f"demo failed: {exc}", style="bold red", markup=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
