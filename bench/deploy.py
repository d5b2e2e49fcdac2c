"""Deployment figures: the playbooks against the lab rack (issue 10, docs/operations.md).

Prints one JSON object: seconds for a fresh converge of a 5-node lab through site.yml,
for the second (no-change) run and its changed count, for check mode, for a rolling
update of the 5 nodes to another version, and for add_node.yml growing a 4-node lab to
5; with the longest task of each run. Usage: python bench/deploy.py [--mode netns|loopback]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.lab import Lab, netns
from agent.lab.deploy import source_release

GOALS = {"fresh_s": 90.0, "rerun_s": 30.0, "add_node_s": 30.0}


def run_figures(recap: dict[str, Any]) -> dict[str, Any]:
    return {
        "seconds": round(recap["seconds"], 2),
        "changed": sum(c["changed"] for c in recap["hosts"].values()),
        "longest_task": recap.get("longest_task"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default = "netns" if netns.available() is None else "loopback"
    parser.add_argument("--mode", choices=["netns", "loopback"], default=default)
    args = parser.parse_args()
    out: dict[str, Any] = {"mode": args.mode, "nodes": 5, "goals": GOALS}
    with tempfile.TemporaryDirectory(prefix="rack-bench-deploy-") as tmp:
        base = Path(tmp)
        lab = Lab(base / "five", progress=lambda m: print(m, file=sys.stderr))
        try:
            started = time.monotonic()
            lab.up(5, args.mode, deploy="ansible", timeout=90.0)
            out["fresh_wall_s"] = round(time.monotonic() - started, 2)
            out["fresh"] = run_figures(lab.playbook_recap("site.yml"))
            out["rerun"] = run_figures(lab.playbook("site.yml"))
            out["check"] = run_figures(lab.playbook("site.yml", check=True))
            source = source_release(base, "9.9.9")
            out["rolling_update"] = run_figures(
                lab.playbook("rolling_update.yml", {"rackcloud_agent_source": str(source)})
            )
        finally:
            lab.down()
        lab = Lab(base / "four", progress=lambda m: print(m, file=sys.stderr))
        try:
            lab.up(4, args.mode, deploy="ansible", timeout=90.0)
            lab.grow()
            grown = lab.playbook("add_node.yml", {"rackcloud_new_nodes": "n5"})
            out["add_node"] = run_figures(grown)
        finally:
            lab.down()
    out["goals_met"] = {
        "fresh": out["fresh"]["seconds"] <= GOALS["fresh_s"],
        "rerun": out["rerun"]["seconds"] <= GOALS["rerun_s"] and out["rerun"]["changed"] == 0,
        "add_node": out["add_node"]["seconds"] <= GOALS["add_node_s"],
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
