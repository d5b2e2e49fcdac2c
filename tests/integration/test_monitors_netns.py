"""Monitors across real network cuts: namespaces on a bridge (root; CI is root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from agent.config import dump_toml, load_client_config
from agent.lab import Lab
from agent.lab import state as lab_state
from tests.conftest import needs_root
from tests.helpers import agreed_leader, create_pool, states, wait_until

pytestmark = [pytest.mark.integration, needs_root]
NODES = ["n1", "n2", "n3", "n4", "n5"]
MONITORS = ["n1", "n2", "n3"]


def rack_inside(
    lab: Lab, node: str, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the CLI inside ``node``'s namespace, talking to that node only (the cut side)."""
    conf = load_client_config(lab.client_conf)
    only = msgspec.structs.replace(
        conf, nodes=tuple(n for n in conf.nodes if n.name == node), timeout=2.0
    )
    path = tmp_path / f"client-{node}.toml"
    path.write_text(dump_toml(msgspec.to_builtins(only)))
    ns = lab_state.require(lab.dir).node(node).netns
    assert ns
    return subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "agent.cli.main",
            "--conf",
            str(path),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_cut_off_monitor_refuses_writes_while_the_majority_commits(
    netns_lab: Lab, tmp_path: Path
) -> None:
    wait_until(lambda: agreed_leader(netns_lab, NODES) is not None, 20, "a leader")
    leader = agreed_leader(netns_lab, NODES)
    cut = next(m for m in MONITORS if m != leader)
    netns_lab.partition(cut)
    try:
        others = [n for n in NODES if n != cut]
        epoch = create_pool(netns_lab, "majority-side")  # the two others keep committing
        wait_until(
            lambda: all(states(netns_lab, v)[cut] == "down" for v in others),
            15,
            f"{cut} voted down",
        )
        refused = rack_inside(
            netns_lab, cut, tmp_path, "pool", "create", "minority-side", "--k", "2", "--m", "1"
        )
        assert refused.returncode == 1, refused.stdout
        assert f"node {cut} reaches 1 of 3 monitors" in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    finally:
        netns_lab.partition(cut, heal=True)
    wait_until(
        lambda: netns_lab.status_of(cut).epoch >= epoch, 15, f"{cut} catches up after the heal"
    )
    wait_until(
        lambda: all(states(netns_lab, v)[cut] == "up" for v in NODES), 15, f"{cut} is up again"
    )
    pools = {p["name"] for p in netns_lab.status_of(cut).pools}
    assert "majority-side" in pools and "minority-side" not in pools


def test_a_partitioned_node_is_voted_down_and_returns_up_without_restarting(netns_lab: Lab) -> None:
    wait_until(lambda: agreed_leader(netns_lab, NODES) is not None, 20, "a leader")
    before = {n.name: n.incarnation for n in netns_lab.status_of("n1").nodes}["n5"]
    netns_lab.partition("n5")
    try:
        wait_until(lambda: states(netns_lab, "n1")["n5"] == "down", 15, "the vote marks n5 down")
    finally:
        netns_lab.partition("n5", heal=True)
    wait_until(lambda: all(states(netns_lab, v)["n5"] == "up" for v in NODES), 15, "n5 is up again")
    after = {n.name: n.incarnation for n in netns_lab.status_of("n1").nodes}["n5"]
    assert after == before  # healed, not restarted
