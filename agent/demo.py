"""``make demo``: the summit demo, as far as the product goes today.

Builds a 5-node lab rack, shows it in ``rack top``, pulls the power of one node, and
measures how long until the monitors' vote has marked it down in every survivor's map;
kills the Raft leader and measures the election; then boots both again and tears the
lab down. Container failover joins this demo with the HA capability.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console, Group

from agent.cli.render import console, nodes_table, summary_line
from agent.errors import RackError
from agent.lab import Lab
from agent.lab.measure import kill_and_time_detection

LAB_DIR = Path(".rack-demo")
VICTIM = "n3"


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
        out.print(f"\n[bold red]Pulling the power of {VICTIM}[/]: SIGKILL all, link down")
        seen = kill_and_time_detection(lab, VICTIM)
        for viewer, t in sorted(seen.items()):
            out.print(f"  {viewer}'s map shows {VICTIM} down after {t:.2f} s")
        slowest = max(seen.values())
        show(out, lab, "n1", f"rack top: {VICTIM} is down")
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
