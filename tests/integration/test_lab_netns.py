"""The netns lab: each node a network namespace on a bridge (root; CI is root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import LabError, RpcTimeout
from agent.lab import Lab, netns
from agent.lab import state as lab_state
from tests.conftest import needs_root
from tests.helpers import states, wait_until

pytestmark = [pytest.mark.integration, needs_root]
NODES = ["n1", "n2", "n3", "n4", "n5"]


def test_five_namespaced_agents_discover_each_other_over_the_bridge(netns_lab: Lab) -> None:
    view = netns_lab.status_of("n1")
    addresses = {n.name: n.address for n in view.nodes}
    assert len(set(addresses.values())) == 5
    assert all(a and a.startswith("10.213.") for a in addresses.values())
    for viewer in NODES:
        assert states(netns_lab, viewer) == dict.fromkeys(NODES, "up")


def test_kill_pulls_the_power_and_boot_restores(netns_lab: Lab) -> None:
    st = lab_state.require(netns_lab.dir)
    ns = st.node("n4").netns
    assert ns and netns.pids(ns)
    netns_lab.kill("n4")
    assert netns.pids(ns) == []  # every process of the node is gone
    survivors = [n for n in NODES if n != "n4"]
    wait_until(
        lambda: all(states(netns_lab, v)["n4"] == "down" for v in survivors),
        15,
        "survivors show n4 down",
    )
    netns_lab.boot("n4")
    assert states(netns_lab, "n4") == dict.fromkeys(NODES, "up")


def test_partition_cuts_a_running_node_and_heal_brings_it_back_without_restart(
    netns_lab: Lab,
) -> None:
    st = lab_state.require(netns_lab.dir)
    ns = st.node("n2").netns
    assert ns
    incarnation = {n.name: n.incarnation for n in netns_lab.status_of("n1").nodes}["n2"]
    pids_before = netns.pids(ns)
    netns_lab.partition("n2")
    others = [n for n in NODES if n != "n2"]
    wait_until(
        lambda: all(states(netns_lab, v)["n2"] == "down" for v in others), 15, "others show n2 down"
    )
    assert netns.pids(ns) == pids_before  # still running on its side of the cut
    with pytest.raises(RpcTimeout):
        netns_lab.status_of("n2", timeout=0.5)  # unreachable from the operator's side too
    netns_lab.partition("n2", heal=True)
    wait_until(
        lambda: all(states(netns_lab, v)["n2"] == "up" for v in others),
        15,
        "others show n2 up again",
    )
    after = {n.name: n.incarnation for n in netns_lab.status_of("n1").nodes}["n2"]
    assert after == incarnation  # the same process: healed, not restarted


def _leftovers(lab_id: str) -> list[str]:
    found = [line for line in netns.ip("netns", "list").splitlines() if f"rc-{lab_id}-" in line]
    found += [
        line
        for line in netns.ip("-o", "link", "show").splitlines()
        if f"rcv{lab_id}" in line or f"rcbr-{lab_id}" in line
    ]
    return found


def test_down_after_a_failed_up_leaves_nothing(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    with pytest.raises(LabError, match="did not converge"):
        lab.up(3, "netns", timeout=0.01)  # too short to converge: up fails and cleans up
    assert lab_state.load(lab.dir) is None
    logs = list((tmp_path / "lab" / "nodes").glob("*/agent.log"))
    assert len(logs) == 3
    conf = (tmp_path / "lab" / "client.toml").read_text()
    lab_id = conf.split('cluster = "lab-')[1][:4]
    assert _leftovers(lab_id) == []
    # and 'down' again is harmless
    assert lab.down() == 0


def test_down_removes_namespaces_links_and_processes(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    lab.up(2, "netns", timeout=60)
    st = lab_state.require(lab.dir)
    pids = [p for n in st.nodes if n.netns for p in netns.pids(n.netns)]
    assert pids and _leftovers(st.lab_id)
    lab.down()
    assert _leftovers(st.lab_id) == []
    assert all(not Path(f"/proc/{p}").exists() for p in pids)
