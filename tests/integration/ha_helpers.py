"""Helpers for the container HA tests on a 5-node netns lab: the demo stream in a
container, its service address polled from the root namespace, its checkpoint, the
agents' event logs on the machine's monotonic clock, and putting the lab back."""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from agent.errors import RackError
from agent.lab import Lab, netns, state
from agent.node.events import read_events
from agent.wire import ContainerStatus
from agent.workloads.video import make_video
from tests.conftest import NETNS_REASON
from tests.helpers import wait_until
from tests.integration.objects_helpers import create_pool, ok, rack_bin, restore

NODES = ["n1", "n2", "n3", "n4", "n5"]
MONITORS = ["n1", "n2", "n3"]
POOL = "vol"
VIDEO = "video"
PORT = 8080
STREAM = ("rack-demo-stream", "--object", f"{POOL}/{VIDEO}")
SLEEPER = ("sleep", "3600")
MOVE_S = 30.0
"""A generous bound on a failover (the lab's is about 1.5 s); speed is for the drills."""

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
_addresses = itertools.count(20)


# ---- the lab -------------------------------------------------------------------------


def ha_lab(base: Path) -> Iterator[Lab]:
    """A 5-node netns lab with a 3+2 pool ``vol`` of 32 PGs holding a 30 s video; down
    at the end, whatever happened."""
    if NETNS_REASON is not None:
        pytest.skip(f"netns lab unavailable: {NETNS_REASON}")
    lab = Lab(base / "lab")
    lab.up(5, "netns", timeout=60.0)
    try:
        create_pool(lab, POOL, 3, 2, "--pg-num", "32")
        ok(rack_bin(lab, "put", f"{POOL}/{VIDEO}", "-", stdin=make_video(25 * 30)))
        yield lab
    finally:
        lab.down()


@pytest.fixture(autouse=True)
def fresh(lab: Lab) -> Iterator[None]:
    """Each test of a module that imports this starts from, and leaves, a whole rack with
    no container (the module defines ``lab``, usually with :func:`ha_lab`)."""
    restore_lab(lab)
    yield
    restore_lab(lab)


def restore_lab(lab: Lab, timeout: float = 60.0) -> None:
    """Heal every link, boot every killed node, wait until every map has every node up,
    and remove every container."""
    st = state.require(lab.dir)
    for node in st.nodes:
        if node.pid is not None:
            lab.partition(node.name, heal=True)
    restore(lab, timeout)
    for name in wait_for_containers(lab):
        ok(rack_bin(lab, "ct", "rm", name))
    wait_until(lambda: containers_or_none(lab) == {}, 20.0, "the map holds no container")


def service_net(lab: Lab) -> ipaddress.IPv4Network:
    """The lab's pool of service addresses (the last /26 of its subnet in netns mode)."""
    net = state.require(lab.dir).service_net
    assert net, "the lab has no pool of service addresses"
    return ipaddress.IPv4Network(net)


def fresh_address(lab: Lab) -> str:
    """An address of the pool no other test uses (a killed node that boots again may
    still hold the addresses it had, so tests never share one)."""
    return str(list(service_net(lab).hosts())[next(_addresses)])


def holders(lab: Lab, address: str) -> list[str]:
    """The nodes whose interface holds ``address``."""
    out = []
    for node in state.require(lab.dir).nodes:
        assert node.netns
        shown = netns.ip("-n", node.netns, "-o", "-4", "addr", "show", "dev", "eth0")
        if any(w.split("/")[0] == address for line in shown.splitlines() for w in line.split()):
            out.append(node.name)
    return out


def leader(lab: Lab) -> str:
    """The monitor leader, as ``rack status --json`` names it."""
    name = json.loads(ok(rack_bin(lab, "status", "--json")).stdout)["quorum"]["leader"]
    assert isinstance(name, str), name
    return name


@contextlib.contextmanager
def preconditions() -> Iterator[None]:
    """A failed assertion in here is an error of the test's set-up, never the expected
    failure of an ``xfail(raises=AssertionError)`` test."""
    try:
        yield
    except AssertionError as exc:
        pytest.fail(f"a precondition failed: {exc!r}")


# ---- containers ----------------------------------------------------------------------


def containers(lab: Lab) -> dict[str, ContainerStatus]:
    """Every container as the first node to answer reports it (in-process, for polling)."""
    with lab.client() as client:
        return {c.name: c for c in client.status(timeout=1.0).containers}


def containers_or_none(lab: Lab) -> dict[str, ContainerStatus] | None:
    try:
        return containers(lab)
    except RackError:
        return None


def wait_for_containers(lab: Lab, timeout: float = 20.0) -> dict[str, ContainerStatus]:
    found: list[dict[str, ContainerStatus]] = []

    def answered() -> bool:
        got = containers_or_none(lab)
        if got is not None:
            found.append(got)
        return got is not None

    wait_until(answered, timeout, "a node reports the containers")
    return found[-1]


def wait_container(
    lab: Lab,
    name: str,
    predicate: Callable[[ContainerStatus], bool],
    what: str,
    timeout: float = MOVE_S,
) -> ContainerStatus:
    """Poll until container ``name`` satisfies ``predicate``; its status then."""
    seen: list[ContainerStatus] = []

    def check() -> bool:
        c = (containers_or_none(lab) or {}).get(name)
        if c is not None and predicate(c):
            seen.append(c)
            return True
        return False

    wait_until(check, timeout, f"container {name} {what}")
    return seen[-1]


def ct_ls(lab: Lab) -> dict[str, dict[str, Any]]:
    """``rack ct ls --json`` by name."""
    listed = json.loads(ok(rack_bin(lab, "ct", "ls", "--json")).stdout)
    assert isinstance(listed, list), listed
    return {c["name"]: c for c in listed}


def run_container(lab: Lab, name: str, cmd: tuple[str, ...], *options: str) -> ContainerStatus:
    """``rack ct run NAME OPTIONS -- CMD``, then until it runs."""
    ok(rack_bin(lab, "ct", "run", name, *options, "--", *cmd))
    return wait_container(lab, name, lambda c: c.state == "running", "runs", 20.0)


def fill_monitors(lab: Lab) -> None:
    """Place a stopped placeholder container on each monitor, so the next container
    goes to a non-monitor node.

    The scheduler places a container on the up compute node with the most free memory,
    then CPU, then the fewest containers (stopped ones count), then the lowest name; lab
    nodes all offer the machine's memory and CPUs, so the first three land on n1, n2 and
    n3, and stopped ones use nothing and never move.
    """
    for i, node in enumerate(MONITORS):
        name = f"hold-{i}"
        placed = run_container(lab, name, SLEEPER)
        if placed.node != node:
            pytest.fail(f"placeholder {name} went to {placed.node}, not {node}")
        ok(rack_bin(lab, "ct", "stop", name))


def run_stream(lab: Lab, name: str, address: str, *options: str) -> ContainerStatus:
    """The demo stream as container ``name`` with volume ``vol/NAME/`` at ``address``,
    once it answers ``GET /frame`` there."""
    c = run_container(
        lab, name, STREAM, "--volume", f"{POOL}/{name}/", "--address", address, *options
    )
    wait_frame(address, lambda f: f["generation"] == c.generation, "answers", 20.0)
    return c


def checkpoint(lab: Lab, name: str) -> dict[str, Any] | None:
    """The stream's checkpoint through ``rack get``; None if it cannot be read."""
    proc = rack_bin(lab, "get", f"{POOL}/{name}/stream.checkpoint", "-")
    if proc.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def wait_checkpoint(lab: Lab, name: str, frame: int = 1, timeout: float = 20.0) -> dict[str, Any]:
    """Until the stream has checkpointed frame ``frame`` or later."""
    seen: list[dict[str, Any]] = []

    def check() -> bool:
        cp = checkpoint(lab, name)
        if cp is not None and cp["frame"] >= frame:
            seen.append(cp)
            return True
        return False

    wait_until(check, timeout, f"{name} checkpoints frame {frame} or later")
    return seen[-1]


# ---- the service address -------------------------------------------------------------


def get_frame(address: str, timeout: float = 0.5) -> dict[str, Any] | None:
    """``GET /frame`` at ``address`` from the root namespace; None if nothing answers."""
    try:
        with _OPENER.open(f"http://{address}:{PORT}/frame", timeout=timeout) as reply:
            body: dict[str, Any] = json.loads(reply.read())
            return body
    except (OSError, urllib.error.URLError, ValueError):
        return None


def wait_frame(
    address: str, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = MOVE_S
) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def check() -> bool:
        body = get_frame(address)
        if body is not None and predicate(body):
            seen.append(body)
            return True
        return False

    wait_until(check, timeout, f"{address} {what}")
    return seen[-1]


def wait_silent(address: str, timeout: float = 20.0) -> None:
    wait_until(lambda: get_frame(address) is None, timeout, f"{address} stops answering")


class FramePoller:
    """Polls ``GET /frame`` every 20 ms in a thread; every answer with its monotonic time."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.answers: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll-{address}", daemon=True)

    def __enter__(self) -> FramePoller:
        self._thread.start()
        wait_until(lambda: bool(self.answers), 20.0, f"{self.address} answers the poller")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            body = get_frame(self.address, timeout=0.25)
            if body is not None:
                self.answers.append((time.monotonic(), body))
            self._stop.wait(0.02)

    def last_before(self, t: float) -> float | None:
        times = [at for at, _ in self.answers if at <= t]
        return times[-1] if times else None

    def first_of(self, generation: int) -> tuple[float, dict[str, Any]] | None:
        return next(((at, b) for at, b in self.answers if b.get("generation") == generation), None)

    def wait_first_of(
        self, generation: int, timeout: float = MOVE_S
    ) -> tuple[float, dict[str, Any]]:
        wait_until(
            lambda: self.first_of(generation) is not None,
            timeout,
            f"{self.address} answers as generation {generation}",
        )
        found = self.first_of(generation)
        assert found is not None
        return found


# ---- the event logs ------------------------------------------------------------------


def events(lab: Lab) -> list[dict[str, Any]]:
    """Every agent's events, on the machine's one monotonic clock, oldest first."""
    out: list[dict[str, Any]] = []
    for node in state.require(lab.dir).nodes:
        out += read_events(lab.node_dir(node.name) / "data" / "events.jsonl")
    return sorted(out, key=lambda e: float(e["t"]))


def find(
    evs: list[dict[str, Any]], kind: str, since: float = float("-inf"), **match: object
) -> list[dict[str, Any]]:
    """The events of ``kind`` at or after ``since`` whose fields equal ``match``."""
    return [
        e
        for e in evs
        if e.get("kind") == kind
        and float(e["t"]) >= since
        and all(e.get(k) == v for k, v in match.items())
    ]


def first_t(evs: list[dict[str, Any]], kind: str, since: float, **match: object) -> float | None:
    found = find(evs, kind, since, **match)
    return float(found[0]["t"]) if found else None


def span(a: float | None, b: float | None) -> str:
    return f"{b - a:.3f} s" if a is not None and b is not None else "n/a"
