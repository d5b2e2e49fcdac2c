"""The loopback lab: real agents on 127.0.0.1, real CURVE sockets, real zeroconf."""

from __future__ import annotations

import json

import pytest

from agent.errors import LabError
from agent.lab import Lab
from tests.helpers import rack, states, wait_until

pytestmark = pytest.mark.integration
NODES = ["n1", "n2", "n3", "n4", "n5"]


def test_five_agents_discover_each_other(loopback_lab: Lab) -> None:
    for viewer in NODES:
        assert states(loopback_lab, viewer) == dict.fromkeys(NODES, "up")


def test_kill_is_seen_dead_by_every_survivor_and_boot_brings_a_new_incarnation(
    loopback_lab: Lab,
) -> None:
    before = {n.name: n.incarnation for n in loopback_lab.status_of("n1").nodes}
    loopback_lab.kill("n3")
    survivors = [n for n in NODES if n != "n3"]
    wait_until(
        lambda: all(states(loopback_lab, v)["n3"] == "down" for v in survivors),
        timeout=15,
        what="every survivor shows n3 down",
    )
    assert all(states(loopback_lab, v)[v] == "up" for v in survivors)

    loopback_lab.boot("n3")
    for viewer in NODES:
        assert states(loopback_lab, viewer) == dict.fromkeys(NODES, "up")
    after = {n.name: n.incarnation for n in loopback_lab.status_of("n1").nodes}
    assert after["n3"] != before["n3"]
    assert {k: v for k, v in after.items() if k != "n3"} == {
        k: v for k, v in before.items() if k != "n3"
    }


def test_status_json_follows_the_contract(loopback_lab: Lab) -> None:
    proc = rack(loopback_lab, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # stdout is pure JSON
    assert {"cluster", "epoch", "quorum", "nodes", "pools", "containers"} <= set(data)
    assert data["cluster"].startswith("lab-")
    assert sorted(n["name"] for n in data["nodes"]) == NODES
    for node in data["nodes"]:
        assert {"name", "address", "state", "roles", "last_heartbeat_age_s", "osds"} <= set(node)
        assert node["state"] == "up" and node["address"] == "127.0.0.1"
        assert {"osd", "compute"} <= set(node["roles"])
        assert ("mon" in node["roles"]) == (node["name"] in data["quorum"]["members"])
        assert node["osds"] and node["osds"][0]["total_bytes"] > 0


def test_watch_streams_heartbeats_with_increasing_seq(loopback_lab: Lab) -> None:
    proc = rack(loopback_lab, "watch", "--json", "--count", "25")
    assert proc.returncode == 0, proc.stderr
    beats = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(beats) == 25
    assert {b["node"]["name"] for b in beats} == set(NODES)
    for node in NODES:
        seqs = [b["seq"] for b in beats if b["node"]["name"] == node]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_top_once_prints_one_frame_with_every_node(loopback_lab: Lab) -> None:
    proc = rack(loopback_lab, "top", "--once")
    assert proc.returncode == 0, proc.stderr
    for node in NODES:
        assert node in proc.stdout
    assert proc.stdout.count(" up ") >= len(NODES)


def test_partition_in_loopback_mode_is_a_clear_error(loopback_lab: Lab) -> None:
    with pytest.raises(LabError, match="netns mode"):
        loopback_lab.partition("n2")
    proc = rack(loopback_lab, "lab", "partition", "n2", "--dir", str(loopback_lab.dir))
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.startswith("rack: ") and "netns mode" in proc.stderr


def test_cli_without_config_says_what_to_do(tmp_path: object) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("RACK_CONF", "RACK_LAB_DIR")}
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "status"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 1
    assert "pass --conf FILE or set RACK_CONF" in proc.stderr
    assert "Traceback" not in proc.stderr
