"""Failover drills on a lab rack: pull a node's power (or cut its link), follow every
container that moves, and turn the client-visible gap into downtime per year and nines.

Each moved container is polled the way its users see it: an HTTP ``GET /frame`` at its
service address, port 8080 (the demo workload's contract), every 20 ms. The phases come
from the agents' event logs, which share the machine's monotonic clock with the drill
(docs/ha.md): detection (the first survivor calls the node dead), vote and commit (the
map says ``down``), lease wait (a majority of monitors released the node's lease), start
(the new instance runs) and first answer (the poller's first reply from it).
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.errors import LabError, RackError
from agent.lab import state
from agent.lab.rack import Lab
from agent.node.events import read_events
from agent.wire import ContainerStatus

POLL_S = 0.02
POLL_TIMEOUT_S = 0.25
SERVICE_PORT = 8080
INCIDENTS_PER_YEAR = 4
YEAR_S = 365.25 * 24 * 3600


@dataclass(slots=True)
class Poller:
    """Polls one service address in a thread; records every answer with its time."""

    address: str
    answers: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"poll-{self.address}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        url = f"http://{self.address}:{SERVICE_PORT}/frame"
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=POLL_TIMEOUT_S) as reply:
                    body = json.loads(reply.read())
                self.answers.append((time.monotonic(), body))
            except (OSError, urllib.error.URLError, ValueError):
                pass
            self._stop.wait(POLL_S)

    def last_before(self, t: float) -> float | None:
        times = [at for at, _ in self.answers if at <= t]
        return times[-1] if times else None

    def first_of_generation(self, generation: int) -> tuple[float, dict[str, Any]] | None:
        for at, body in self.answers:
            if isinstance(body.get("generation"), int) and body["generation"] >= generation:
                return at, body
        return None


def nines(downtime_per_year_s: float) -> float:
    """The number of nines of availability that much downtime a year leaves."""
    unavailable = downtime_per_year_s / YEAR_S
    return round(-math.log10(unavailable), 2) if unavailable > 0 else float("inf")


def _first(events: list[dict[str, Any]], after: float, **match: object) -> float | None:
    times = [
        float(e["t"])
        for e in events
        if float(e["t"]) >= after and all(e.get(k) == v for k, v in match.items())
    ]
    return min(times) if times else None


def _span(a: float | None, b: float | None) -> float | None:
    return round(b - a, 3) if a is not None and b is not None else None


class Drill:
    def __init__(self, lab: Lab, progress: Callable[[str], None] = lambda _m: None) -> None:
        self.lab = lab
        self.progress = progress

    def _containers(self) -> list[ContainerStatus]:
        with self.lab.client() as client:
            return list(client.status(timeout=2.0).containers)

    def events(self) -> list[dict[str, Any]]:
        st = state.require(self.lab.dir)
        out: list[dict[str, Any]] = []
        for node in st.nodes:
            out += read_events(self.lab.node_dir(node.name) / "data" / "events.jsonl")
        return out

    def run(
        self,
        node: str,
        kind: str,
        timeout: float = 30.0,
        on_moved: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Strike ``node``, wait until its containers answer from elsewhere (then call
        ``on_moved``, e.g. to show the rack while the node is still gone), bring it back,
        and return the report (docs/ha.md lists its fields)."""
        if kind not in ("kill", "partition"):
            raise LabError(f"a drill is kill or partition, not {kind!r}")
        st = state.require(self.lab.dir)
        st.node(node)  # a clear error for a node the lab does not have
        moving = [c for c in self._containers() if c.node == node and c.state == "running"]
        if not moving:
            raise LabError(
                f"node {node} runs no container, so there is no failover to measure; "
                "run one there first (rack ct ls shows where containers run)"
            )
        pollers = {c.name: Poller(c.address or "") for c in moving}
        for p in pollers.values():
            p.start()
        try:
            self._await_answers(pollers, timeout)
            self.progress(f"{'pulling the power of' if kind == 'kill' else 'cutting off'} {node}")
            struck = time.monotonic()
            if kind == "kill":
                self.lab.kill(node)
            else:
                self.lab.partition(node)
            moved = self._await_moves(moving, pollers, timeout)
        finally:
            for p in pollers.values():
                p.stop()
        if on_moved is not None:
            on_moved()
        self.progress(f"bringing {node} back")
        healed = self._bring_back(node, kind)
        report = self._report(node, kind, struck, moving=moving, pollers=pollers, moved=moved)
        if kind == "partition":
            time.sleep(1.0)  # give a healed node the chance to misbehave, then look
            report["restarted_on_old_node"] = self._restarted_on(node, moving, healed)
        return report

    @staticmethod
    def _await_answers(pollers: dict[str, Poller], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(p.answers for p in pollers.values()):
            if time.monotonic() > deadline:
                silent = ", ".join(n for n, p in pollers.items() if not p.answers)
                raise LabError(
                    f"container {silent} does not answer GET /frame on port {SERVICE_PORT} "
                    "before the drill"
                )
            time.sleep(POLL_S)

    def _await_moves(
        self, moving: list[ContainerStatus], pollers: dict[str, Poller], timeout: float
    ) -> dict[str, ContainerStatus]:
        """Wait until every container answers from a newer generation; their new status."""
        deadline = time.monotonic() + timeout
        before = {c.name: c.generation for c in moving}
        while True:
            answered = all(
                pollers[n].first_of_generation(g + 1) is not None for n, g in before.items()
            )
            if answered:
                try:
                    now = {c.name: c for c in self._containers()}
                except RackError:
                    now = {}
                if all(n in now and now[n].generation > g for n, g in before.items()):
                    return now
            if time.monotonic() > deadline:
                raise LabError(
                    f"the containers of the node did not answer again within {timeout:g} s"
                )
            time.sleep(POLL_S)

    def _bring_back(self, node: str, kind: str) -> float:
        if kind == "kill":
            self.lab.boot(node, wait=False)
        else:
            self.lab.partition(node, heal=True)
        healed = time.monotonic()
        self.lab.wait_converged(60.0)
        return healed

    def _restarted_on(self, node: str, moving: list[ContainerStatus], since: float) -> bool:
        names = {c.name for c in moving}
        return any(
            e.get("kind") == "container_start" and e.get("container") in names
            for e in self.events()
            if e.get("node") == node and float(e["t"]) >= since
        )

    def _report(
        self,
        node: str,
        kind: str,
        struck: float,
        *,
        moving: list[ContainerStatus],
        pollers: dict[str, Poller],
        moved: dict[str, ContainerStatus],
    ) -> dict[str, Any]:
        events = self.events()
        dead = _first(events, struck, kind="peer_dead", subject=node)
        down = _first(events, struck, kind="node_state", subject=node, state="down")
        released = _first(events, struck, kind="leases_released", subject=node)
        rows: list[dict[str, Any]] = []
        gaps: list[float] = []
        for c in moving:
            new = moved[c.name]
            started = _first(
                events, struck, kind="container_start", container=c.name, generation=new.generation
            )
            old_stop = _first(
                events, struck, kind="container_fenced", container=c.name, generation=c.generation
            )
            poller = pollers[c.name]
            first = poller.first_of_generation(c.generation + 1)
            last_old = poller.last_before(struck) or struck
            answered = first[0] if first else None
            gap = _span(last_old, answered)
            gaps.append(gap if gap is not None else float("inf"))
            rows.append(
                {
                    "name": c.name,
                    "from": node,
                    "to": new.node,
                    "generation_before": c.generation,
                    "generation_after": new.generation,
                    "gap_s": gap,
                    "phases": {
                        "detection_s": _span(struck, dead),
                        "vote_commit_s": _span(dead, down),
                        "lease_wait_s": _span(down, released),
                        "start_s": _span(released, started),
                        "first_answer_s": _span(started, answered),
                    },
                    "old_stopped_s": _span(struck, old_stop),
                    "old_stopped_before_new_started": (
                        None
                        if kind == "kill"
                        else old_stop is not None and started is not None and old_stop < started
                    ),
                    "first_answer": first[1] if first else None,
                }
            )
        worst = max(gaps)
        per_year = round(worst * INCIDENTS_PER_YEAR, 3)
        return {
            "drill": kind,
            "node": node,
            "containers": rows,
            "gap_s": worst,
            "incidents_per_year": INCIDENTS_PER_YEAR,
            "downtime_per_year_s": per_year,
            "nines": nines(per_year),
        }
