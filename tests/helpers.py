"""Helpers for tests that drive a real lab rack."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from agent.clustermap import CreatePool
from agent.errors import RackError
from agent.lab import Lab
from agent.wire import ClusterStatus


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate``; fail with ``what`` if it is not true within ``timeout`` seconds.

    The timeout is a generous upper bound so a noisy machine does not flake; speed is
    measured in bench/, not asserted here.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting until {what}")


def states(lab: Lab, viewer: str) -> dict[str, str]:
    return {n.name: n.state for n in lab.status_of(viewer).nodes}


def rack(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``rack`` CLI against the lab, as an operator would."""
    env = {**os.environ, "RACK_CONF": str(lab.client_conf)}
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.main", *args],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=60,
    )


def views(lab: Lab, viewers: list[str]) -> dict[str, ClusterStatus]:
    return {v: lab.status_of(v) for v in viewers}


def leader_of(lab: Lab, viewer: str) -> str | None:
    quorum = lab.status_of(viewer).quorum
    return quorum.leader if quorum else None


def agreed_leader(lab: Lab, viewers: list[str]) -> str | None:
    """The leader every viewer names, or None while they disagree or know none."""
    try:
        leaders = {leader_of(lab, v) for v in viewers}
    except RackError:
        return None
    return leaders.pop() if len(leaders) == 1 else None


def create_pool(lab: Lab, name: str, k: int = 2, m: int = 1) -> int:
    """Commit a pool through the operator's client; returns the map epoch it made."""
    with lab.client() as client:
        reply = client.propose(CreatePool(name=name, k=k, m=m), timeout=10.0)
    assert reply.refused is None, reply.refused
    return reply.epoch
