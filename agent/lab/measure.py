"""Measurements on a running lab, shared by ``make demo`` and ``bench/lab.py``.

Times are taken by polling every survivor's own view over the real RPC path, so they
include everything an operator would wait for, not just the detector's arithmetic.
"""

from __future__ import annotations

import os
import time

from agent.errors import LabError, RackError
from agent.lab import state
from agent.lab.rack import Lab, proc_stat


def seconds_until_seen(
    lab: Lab, target: str, wanted: str, viewers: list[str], timeout: float = 30.0
) -> dict[str, float]:
    """Seconds from now until each viewer shows ``target`` in state ``wanted``."""
    start = time.monotonic()
    seen: dict[str, float] = {}
    while len(seen) < len(viewers):
        if time.monotonic() - start > timeout:
            missing = sorted(set(viewers) - set(seen))
            raise LabError(
                f"{', '.join(missing)} did not see {target} {wanted} within {timeout:g} s"
            )
        for viewer in viewers:
            if viewer in seen:
                continue
            try:
                view = lab.status_of(viewer, timeout=0.5)
            except RackError:
                continue
            if any(n.name == target and n.state == wanted for n in view.nodes):
                seen[viewer] = time.monotonic() - start
        time.sleep(0.01)
    return seen


def kill_and_time_detection(lab: Lab, target: str) -> dict[str, float]:
    """Pull ``target``'s power; seconds until each survivor shows it down."""
    st = state.require(lab.dir)
    survivors = [n.name for n in st.nodes if n.name != target and n.pid is not None]
    lab.kill(target)
    return seconds_until_seen(lab, target, "down", survivors)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (from /proc)."""
    fields = proc_stat(pid)
    if not fields:
        raise LabError(f"process {pid} is gone")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def agent_pid(lab: Lab, node: str) -> int:
    pid = state.require(lab.dir).node(node).pid
    if pid is None:
        raise LabError(f"node {node} is not running")
    return pid


def idle_cpu_percent(lab: Lab, node: str, seconds: float = 10.0) -> float:
    """Percent of one core the node's agent uses over ``seconds`` of idle heartbeating."""
    pid = agent_pid(lab, node)
    before, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - before) / (time.monotonic() - t0)
