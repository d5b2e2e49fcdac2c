"""Restart policies with real agents, in a loopback lab: a crashed container restarts in
place (same node, same generation) by its policy; a power pull there takes its container
too (the lab kills what the node's pidfiles name)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from agent.lab import Lab
from agent.node.events import read_events
from tests.helpers import wait_until
from tests.integration.objects_helpers import ok, rack_bin


@pytest.fixture(scope="module")
def lab(loopback_lab: Lab) -> Iterator[Lab]:
    yield loopback_lab


def containers(lab: Lab) -> dict[str, dict[str, object]]:
    out = ok(rack_bin(lab, "ct", "ls", "--json")).stdout
    return {c["name"]: c for c in json.loads(out)}


def starts(lab: Lab, name: str) -> list[dict[str, object]]:
    events = []
    for node in ("n1", "n2", "n3", "n4", "n5"):
        events += read_events(lab.node_dir(node) / "data" / "events.jsonl")
    return [e for e in events if e.get("kind") == "container_start" and e["container"] == name]


def test_on_failure_restarts_a_failing_command_in_place(lab: Lab) -> None:
    ok(
        rack_bin(
            lab,
            "ct",
            "run",
            "flap",
            "--restart",
            "on-failure",
            "--wait",
            "0",
            "--",
            "sh",
            "-c",
            "sleep 0.3; exit 3",
        )
    )
    wait_until(lambda: len(starts(lab, "flap")) >= 3, 20.0, "three starts of flap")
    runs = starts(lab, "flap")
    assert {e["node"] for e in runs} == {runs[0]["node"]}  # in place
    assert {e["generation"] for e in runs} == {1}
    info = containers(lab)["flap"]
    assert int(str(info["restarts"])) >= 1
    ok(rack_bin(lab, "ct", "rm", "flap"))


def test_never_leaves_an_exited_container_exited(lab: Lab) -> None:
    ok(
        rack_bin(
            lab,
            "ct",
            "run",
            "once",
            "--restart",
            "never",
            "--wait",
            "0",
            "--",
            "sh",
            "-c",
            "exit 0",
        )
    )
    wait_until(lambda: containers(lab)["once"]["state"] == "exited", 20.0, "once exited")
    time.sleep(1.0)
    assert len(starts(lab, "once")) == 1 and containers(lab)["once"]["state"] == "exited"
    ok(rack_bin(lab, "ct", "rm", "once"))


def test_a_power_pull_in_loopback_mode_kills_the_container_too(lab: Lab) -> None:
    ok(rack_bin(lab, "ct", "run", "sleeper", "--", "sleep", "300"))
    info = containers(lab)["sleeper"]
    node = str(info["node"])
    pidfile = lab.node_dir(node) / "data" / "containers" / "sleeper.pid"
    wait_until(pidfile.exists, 10.0, "the pidfile")
    pid = int(pidfile.read_text())
    lab.kill(node)
    try:
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10.0, "the container gone")
        wait_until(
            lambda: (
                containers(lab)["sleeper"]["node"] != node
                and containers(lab)["sleeper"]["state"] == "running"
            ),
            30.0,
            "the container running elsewhere",
        )
        assert (
            int(str(containers(lab)["sleeper"]["generation"])) == int(str(info["generation"])) + 1
        )
    finally:
        lab.boot(node)
        ok(rack_bin(lab, "ct", "rm", "sleeper"))
