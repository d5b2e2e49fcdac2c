"""Helpers for tests that drive a real lab rack."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from agent.lab import Lab


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
