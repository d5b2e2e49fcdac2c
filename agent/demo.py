"""``make demo``: the summit demo.

A 5-node lab rack stores a video in a 3+2 pool and runs the streaming container
``rack-demo-stream`` on one node. ``rack top`` shows the nodes' and the container's
heartbeats, the leader, and the container's node and generation. Then the power of the
container's node is pulled: the survivors vote it down, a majority of monitors releases
its lease, the container starts on another node from the surviving shards (generation
+ 1), and a client polling the service address measures the gap, turned into downtime
per year and nines. As root the rack is the netns lab; otherwise loopback, and it says so.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live

from agent.cli.drill import describe
from agent.cli.render import console, containers_table, nodes_table, summary_line
from agent.clustermap import ContainerSpec, CreatePool, PutContainer
from agent.errors import RackError
from agent.lab import Lab, state
from agent.lab.drill import Drill
from agent.lab.objects import put_bytes
from agent.wire import ClusterStatus, ContainerStatus
from agent.workloads.video import make_video

LAB_DIR = Path(".rack-demo")
POOL = "vol"
VIDEO = "videos/summit"
CONTAINER = "stream"
FPS = 25
SUMMIT_GAP_S = 12.0


def frame(status: ClusterStatus, title: str) -> Group:
    return Group(summary_line(status), nodes_table(status, title=title), containers_table(status))


def show(out: Console, lab: Lab, title: str, live_s: float = 0.0) -> ClusterStatus:
    """One ``rack top`` frame; on a terminal, ``live_s`` seconds of the live console."""
    status = lab.status_of("n5")
    if live_s <= 0 or not out.is_terminal:
        out.print(frame(status, title))
        return status
    with Live(frame(status, title), console=out, refresh_per_second=4) as live:
        end = time.monotonic() + live_s
        while time.monotonic() < end:
            time.sleep(0.25)
            status = lab.status_of("n5")
            live.update(frame(status, f"{title}  {time.strftime('%H:%M:%S')}"))
    return status


def the_stream(lab: Lab, timeout: float = 30.0) -> ContainerStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in lab.status_of("n5").containers:
            if c.name == CONTAINER and c.state == "running":
                return c
        time.sleep(0.1)
    raise RackError(f"the {CONTAINER} container did not run within {timeout:g} s")


class Viewer:
    """A viewer of the stream: one line per second, saying what it sees (or does not)."""

    def __init__(self, out: Console, address: str) -> None:
        self.out = out
        self.url = f"http://{address}:8080/frame"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="viewer", daemon=True)

    def __enter__(self) -> Viewer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                with urllib.request.urlopen(self.url, timeout=0.3) as reply:  # noqa: S310 - the lab
                    seen = reply.read().decode()
                self.out.print(f"  viewer: {seen}", style="cyan", markup=False)
            except OSError:
                self.out.print("  viewer: no picture", style="bold red")


def run(out: Console) -> None:
    lab = Lab(LAB_DIR, progress=lambda m: out.print(m, style="dim"))
    lab.down()  # a previous demo that was interrupted
    out.rule("[bold]Rackcloud: the summit demo")
    seconds = lab.up(5, "auto", deploy="ansible")
    mode = state.require(lab.dir).mode
    why = "" if mode == "netns" else " (not root: loopback mode, every node on 127.0.0.1)"
    out.print(
        f"5-node lab rack deployed with ansible-playbook playbooks/site.yml in {mode} mode{why}, "
        f"formed after [bold]{seconds:.2f} s[/]"
    )
    try:
        with lab.client() as client:
            refused = client.propose(CreatePool(name=POOL, k=3, m=2, pg_num=32)).refused
            if refused:
                raise RackError(refused)
            video = make_video(FPS * 120, 4096)
            put_s = put_bytes(lab, POOL, VIDEO, video)
            out.print(
                f"stored the video {POOL}/{VIDEO} ({len(video) / 2**20:.1f} MiB, 3+2 over 5 "
                f"hosts) in {put_s:.2f} s"
            )
            spec = ContainerSpec(
                name=CONTAINER,
                command=("rack-demo-stream", "--object", f"{POOL}/{VIDEO}", "--fps", str(FPS)),
                volume=f"{POOL}/{CONTAINER}/",
            )
            refused = client.propose(PutContainer(spec=spec)).refused
            if refused:
                raise RackError(refused)
        stream = the_stream(lab)
        out.print(
            f"\n$ rack ct run {CONTAINER} --volume {POOL}/{CONTAINER}/ -- rack-demo-stream "
            f"--object {POOL}/{VIDEO}\n  -> runs on [bold]{stream.node}[/] at "
            f"{stream.address}:8080 as generation {stream.generation}"
        )
        assert stream.node is not None and stream.address is not None
        with Viewer(out, stream.address):
            time.sleep(1.5)
            show(out, lab, "rack top", live_s=3.0)
            out.print(f"\n[bold red]Pulling both power cords of {stream.node}[/]")
            gone = stream.node

            def while_gone() -> None:
                show(out, lab, f"rack top: {gone} is dead, the stream runs elsewhere")

            report = Drill(lab, progress=lambda m: out.print(m, style="dim")).run(
                gone, "kill", on_moved=while_gone
            )
            time.sleep(1.0)
        show(out, lab, f"rack top: {gone} is back, the stream stays where it moved")
        out.rule("[bold]Result")
        for line in describe(report):
            out.print(line, markup=False)
        gap = report["gap_s"]
        out.print(
            f"the bar at the summit: {SUMMIT_GAP_S:g} s; here: [bold]{gap:.2f} s[/] "
            f"({SUMMIT_GAP_S / gap:.1f}x faster)"
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
