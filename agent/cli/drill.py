"""``rack drill kill|partition NODE``: a failover drill on the lab rack (docs/ha.md)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from agent.lab import Lab
from agent.lab.drill import Drill

PHASES = (
    ("detection_s", "detection"),
    ("vote_commit_s", "vote and commit"),
    ("lease_wait_s", "lease wait"),
    ("start_s", "start"),
    ("first_answer_s", "first answer"),
)


def _seconds(value: object) -> str:
    return f"{value:.2f} s" if isinstance(value, int | float) else "?"


def describe(report: dict[str, Any]) -> list[str]:
    """The drill as plain lines (the demo prints the same)."""
    what = "pulled the power of" if report["drill"] == "kill" else "cut off"
    lines = [f"drill: {what} {report['node']}"]
    for c in report["containers"]:
        lines.append(
            f"  {c['name']}: {c['from']} -> {c['to']}, generation {c['generation_before']} -> "
            f"{c['generation_after']}, clients saw a gap of {_seconds(c['gap_s'])}"
        )
        lines.append(
            "    " + ", ".join(f"{label} {_seconds(c['phases'][key])}" for key, label in PHASES)
        )
        if c["old_stopped_before_new_started"] is not None:
            verdict = "before" if c["old_stopped_before_new_started"] else "NOT before"
            lines.append(
                f"    the cut-off instance stopped {_seconds(c['old_stopped_s'])} after the cut, "
                f"{verdict} the new one started"
            )
    if "restarted_on_old_node" in report:
        again = "started it again" if report["restarted_on_old_node"] else "did not start it again"
        lines.append(f"  after healing, {report['node']} {again}")
    lines.append(
        f"  at {report['incidents_per_year']} such incidents a year: "
        f"{report['downtime_per_year_s']:.1f} s of downtime a year, {report['nines']:.2f} nines"
    )
    return lines


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    lab_of: Callable[[argparse.Namespace], Lab],
) -> None:
    drill = sub.add_parser("drill", help="failover drills on the lab rack").add_subparsers(
        dest="drill_cmd", required=True, metavar="KIND"
    )
    for kind, help_ in (
        ("kill", "pull a node's power, follow its containers' failover, then boot it"),
        ("partition", "cut a node's link, follow the failover, then heal it (netns mode)"),
    ):
        sp = drill.add_parser(kind, help=help_, description=help_)
        sp.add_argument("node")
        sp.add_argument("--json", action="store_true", help="one JSON object on stdout")
        sp.add_argument("--timeout", type=float, default=30.0)
        sp.add_argument("--dir", help="lab directory (default: $RACK_LAB_DIR or .rack-lab)")

        def run(args: argparse.Namespace, kind: str = kind) -> int:
            report = Drill(lab_of(args)).run(args.node, kind, timeout=args.timeout)
            if args.json:
                print(json.dumps(report))
            else:
                print("\n".join(describe(report)))
            return 0

        sp.set_defaults(fn=run)
