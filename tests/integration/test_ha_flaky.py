"""A slow, lossy link is not a dead node: the streaming container's own node gets netem's
100 ms ± 50 ms delay and 5 % loss (agent.lab.flaky) for a minute, and the rack must vote
nothing down, fence nothing and move nothing.

The hardest case on purpose: the impaired node runs the container, so its lease renewals,
its heartbeats and the container's checkpoint writes all cross the flaky link. Checked
from the agents' event logs and from ``rack ct ls --json``; the viewer's failed polls are
printed, not asserted (a poll needs several round trips of a flaky link). Root only.
``RACK_FLAKY_S`` shortens (or lengthens) the minute.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.lab import Lab, state
from agent.node.events import read_events
from agent.workloads.video import make_video
from tests.conftest import needs_root
from tests.helpers import wait_until
from tests.integration.objects_helpers import create_pool, ok, rack_bin

pytestmark = [pytest.mark.integration, needs_root]

IMPAIRED_S = float(os.environ.get("RACK_FLAKY_S", "60"))
DELAY, JITTER, LOSS = 0.1, 0.05, 0.05
POLL_EVERY_S = 0.2
POLL_TIMEOUT_S = 2.0
"""Long enough for a fresh connection and a request over a 200 ms round trip, with a
lost segment or two."""
CT_LS_EVERY_S = 5.0


@dataclass
class Viewer:
    """Polls ``GET /frame`` of the container in a thread and counts what comes back."""

    address: str
    ok: int = 0
    failed: int = 0
    generations: set[int] = field(default_factory=set)
    frames: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Viewer:
        self._thread = threading.Thread(target=self._run, name="viewer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def reset(self) -> None:
        self.ok = self.failed = 0

    def _run(self) -> None:
        url = f"http://{self.address}:8080/frame"
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=POLL_TIMEOUT_S) as reply:
                    body = json.loads(reply.read())
                self.ok += 1
                self.generations.add(int(body["generation"]))
                self.frames.append(int(body["frame"]))
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                self.failed += 1
            self._stop.wait(POLL_EVERY_S)


def containers(lab: Lab) -> dict[str, dict[str, Any]]:
    listing: list[dict[str, Any]] = json.loads(ok(rack_bin(lab, "ct", "ls", "--json")).stdout)
    return {c["name"]: c for c in listing}


def events_since(lab: Lab, since: float) -> list[dict[str, Any]]:
    """Every agent's events from ``since`` on: they share this machine's monotonic clock."""
    out: list[dict[str, Any]] = []
    for node in state.require(lab.dir).nodes:
        for event in read_events(lab.node_dir(node.name) / "data" / "events.jsonl"):
            t = event.get("t")
            if isinstance(t, int | float) and t >= since:
                out.append(dict(event))
    return out


def violations(events: list[dict[str, Any]], generation: int) -> list[dict[str, Any]]:
    """Events that say the rack took the slow node for a dead one."""
    return [
        e
        for e in events
        if (e.get("kind") == "node_state" and e.get("state") == "down")
        or (e.get("kind") == "container_assigned" and int(e.get("generation", 0)) > generation)
        or e.get("kind") == "container_fenced"
    ]


@pytest.fixture
def lab5(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "lab")
    try:
        lab.up(5, "netns", timeout=60)
        yield lab
    finally:
        lab.down()  # restores an impaired link first


def test_a_flaky_link_under_the_stream_is_no_failover(lab5: Lab, tmp_path: Path) -> None:
    create_pool(lab5, "vol", 3, 2, "--pg-num", "32")
    video = tmp_path / "video"
    video.write_bytes(make_video(25 * 20))
    ok(rack_bin(lab5, "put", "vol/video", str(video)))
    run = ["ct", "run", "stream", "--volume", "vol/stream/", "--"]
    ok(rack_bin(lab5, *run, "rack-demo-stream", "--object", "vol/video"))
    wait_until(lambda: containers(lab5)["stream"]["state"] == "running", 30, "the stream runs")
    stream = containers(lab5)["stream"]
    node, generation, address = stream["node"], stream["generation"], stream["address"]
    assert node and address

    with Viewer(address) as viewer:
        wait_until(lambda: viewer.ok > 0, 30, "the stream answers GET /frame")
        since = time.monotonic()  # the swap to the forwarder counts too
        lab5.impair(node, DELAY, JITTER, LOSS)
        viewer.reset()
        started = time.monotonic()
        bad: list[dict[str, Any]] = []
        listings: list[tuple[str | None, int, str]] = []
        next_ls = started
        try:
            while time.monotonic() - started < IMPAIRED_S and not bad:
                bad = violations(events_since(lab5, since), generation)
                if time.monotonic() >= next_ls:
                    now = containers(lab5)["stream"]
                    listings.append((now["node"], now["generation"], now["state"]))
                    next_ls += CT_LS_EVERY_S
                time.sleep(0.5)
            impaired_for = time.monotonic() - started
            polls = (viewer.ok, viewer.failed)
        finally:
            lab5.restore(node)
        time.sleep(2.0)  # a vote already under way would commit now
        seen = events_since(lab5, since)
        bad = violations(seen, generation)
        final = containers(lab5)["stream"]

    kinds = Counter(str(e.get("kind")) for e in seen)
    notable = [
        f"{e['node']} {e['kind']} {e.get('subject', '')} {e.get('state', '')} at "
        f"+{float(e['t']) - since:.1f} s"
        for e in seen
        if e.get("kind") in ("peer_dead", "node_state", "leases_released")
    ]
    print(
        f"\nstream on {node} (generation {generation}) impaired for {impaired_for:.1f} s: "
        f"{polls[0]} polls answered, {polls[1]} failed; generations seen {viewer.generations}; "
        f"events {dict(kinds)} {notable}; ct ls {sorted(set(listings))}"
    )
    assert bad == [], f"the rack took a slow node for a dead one: {bad}"
    assert all(entry[:2] == (node, generation) for entry in listings), listings
    assert (final["node"], final["generation"], final["state"]) == (node, generation, "running")
    assert viewer.generations == {generation}
    assert viewer.frames == sorted(viewer.frames)  # the stream never went back
