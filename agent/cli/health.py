"""``rack health``: wait until the rack is formed, for deployment gates (docs/operations.md).

It asks one agent (the client config's nodes, in order) for its view and applies the same
"rack formed" predicate as ``rack lab up`` and ``rack status`` (``agent.core.formed``).
Ansible's health role runs it on each node against that node's own agent, so a gate says
what *this* node sees. ``--running NODE=VERSION`` also requires that node to run that
version (the rolling update's gate after each node).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from agent.client import Client
from agent.core.formed import forming
from agent.errors import RackError
from agent.wire import ClusterStatus

POLL_S = 0.2


class NotHealthy(RackError):
    """The rack did not form within the wait."""


def missing(view: ClusterStatus, expect: list[str] | None, running: dict[str, str]) -> list[str]:
    """What keeps ``view`` from being healthy: not formed, or a node at another version."""
    lacks = forming(view, expected=expect)
    versions = {n.name: n.version for n in view.nodes}
    for name, want in sorted(running.items()):
        have = versions.get(name)
        if have != want:
            lacks.append(f"{name} runs version {have or 'unknown'}, not {want}")
    return lacks


def summary(view: ClusterStatus) -> dict[str, Any]:
    return {
        "answered_by": view.answered_by,
        "leader": view.quorum.leader if view.quorum else None,
        "epoch": view.epoch,
        "nodes": [
            {
                "name": n.name,
                "state": n.state,
                "version": n.version,
                "incarnation": n.incarnation,
                "osds": len(n.osd_ids),
            }
            for n in view.nodes
        ],
    }


def wait_healthy(
    client: Client,
    wait: float,
    expect: list[str] | None,
    running: dict[str, str],
    clock: Callable[[], float] = time.monotonic,
) -> ClusterStatus:
    deadline = clock() + wait
    last = "no agent answered"
    while True:
        try:
            view = client.status(timeout=min(1.0, max(0.2, deadline - clock())))
        except RackError as exc:
            last = str(exc)
        else:
            lacks = missing(view, expect, running)
            if not lacks:
                return view
            last = "; ".join(lacks)
        if clock() >= deadline:
            raise NotHealthy(f"the rack is not healthy after {wait:g} s: {last}")
        time.sleep(POLL_S)


def parse_running(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, version = item.partition("=")
        if not sep or not name or not version:
            raise RackError(f"--running takes NODE=VERSION, not {item!r}")
        out[name] = version
    return out


def cmd_health(args: argparse.Namespace, client_of: Callable[[], Client]) -> int:
    expect = [n for n in args.expect.split(",") if n] if args.expect else None
    running = parse_running(args.running)
    with client_of() as client:
        view = wait_healthy(client, args.wait, expect, running)
    if args.json:
        print(json.dumps({"healthy": True, **summary(view)}))
    else:
        up = sum(1 for n in view.nodes if n.state == "up")
        leader = view.quorum.leader if view.quorum else None
        print(f"rack healthy: {up} nodes up, leader {leader}, as {view.answered_by} sees it")
    return 0


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    client_of: Callable[[argparse.Namespace], Client],
) -> None:
    help_ = "wait until the rack is formed (the deployment health gate)"
    hp = sub.add_parser("health", help=help_, description=help_)
    hp.add_argument("--wait", type=float, default=0.0, help="seconds to wait (default: ask once)")
    hp.add_argument("--expect", help="comma-separated nodes that must be up (default: all)")
    hp.add_argument(
        "--running",
        action="append",
        default=[],
        metavar="NODE=VERSION",
        help="also require NODE to run VERSION (repeatable)",
    )
    hp.add_argument("--json", action="store_true")
    hp.set_defaults(fn=lambda args: cmd_health(args, lambda: client_of(args)))
