"""The example viewer in docs/ must keep working against a real rack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.lab import Lab

pytestmark = pytest.mark.integration
VIEWER = Path(__file__).resolve().parents[2] / "docs" / "examples" / "heartbeat_viewer.py"


def test_documented_viewer_prints_heartbeats_of_every_node(loopback_lab: Lab) -> None:
    proc = subprocess.run(
        [sys.executable, str(VIEWER), str(loopback_lab.client_conf), "20"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 20
    assert {line.split()[0] for line in lines} == {f"hb.n{i}" for i in range(1, 6)}
    assert all("seq=" in line and "incarnation=" in line for line in lines)
