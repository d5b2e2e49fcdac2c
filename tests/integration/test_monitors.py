"""Monitors on a real lab rack: Raft over CURVE links, the map, the vote."""

from __future__ import annotations

import pytest

from agent.lab import Lab
from tests.helpers import agreed_leader, create_pool, rack, states, wait_until

pytestmark = pytest.mark.integration
NODES = ["n1", "n2", "n3", "n4", "n5"]
MONITORS = ["n1", "n2", "n3"]


def epochs(lab: Lab, viewers: list[str]) -> set[int]:
    return {lab.status_of(v).epoch for v in viewers}


def test_one_leader_and_a_map_of_every_node_and_disk(loopback_lab: Lab) -> None:
    wait_until(
        lambda: agreed_leader(loopback_lab, NODES) in MONITORS, 20, "all nodes name one leader"
    )
    status = loopback_lab.status_of("n4")
    assert status.quorum is not None and list(status.quorum.members) == MONITORS
    assert status.quorum.term >= 1
    # 5 nodes and 5 disks were proposed into the map by the leader: at least 10 changes
    wait_until(
        lambda: loopback_lab.status_of("n5").epoch >= 10, 20, "the map lists nodes and disks"
    )
    assert states(loopback_lab, "n5") == dict.fromkeys(NODES, "up")
    roles = {n.name: set(n.roles) for n in loopback_lab.status_of("n1").nodes}
    assert all(("mon" in roles[n]) == (n in MONITORS) for n in NODES)


def test_a_committed_change_reaches_every_node(loopback_lab: Lab) -> None:
    wait_until(lambda: agreed_leader(loopback_lab, NODES) is not None, 20, "a leader")
    epoch = create_pool(loopback_lab, "alpha")
    wait_until(lambda: epochs(loopback_lab, NODES) == {epoch}, 10, f"every node at epoch {epoch}")
    pools = loopback_lab.status_of("n5").pools
    assert [(p["name"], p["k"], p["m"]) for p in pools] == [("alpha", 2, 1)]
    # the map refuses what cannot be, in one plain sentence on stderr
    again = rack(loopback_lab, "pool", "create", "alpha", "--k", "2", "--m", "1")
    assert again.returncode == 1 and again.stderr.strip() == "rack: pool 'alpha' already exists"
    wide = rack(loopback_lab, "pool", "create", "wide", "--k", "4", "--m", "2")
    assert wide.returncode == 1
    assert "a 4+2 pool needs 6 hosts, only 5 are up" in wide.stderr


def test_a_killed_node_is_voted_down_and_up_again_on_boot(loopback_lab: Lab) -> None:
    loopback_lab.kill("n5")
    survivors = [n for n in NODES if n != "n5"]
    wait_until(
        lambda: all(states(loopback_lab, v)["n5"] == "down" for v in survivors),
        15,
        "the vote marks n5 down in every survivor's map",
    )
    loopback_lab.boot("n5")
    wait_until(
        lambda: all(states(loopback_lab, v)["n5"] == "up" for v in NODES),
        15,
        "n5 is up again in every map",
    )
    # the rebooted agent started with no map and fetched the current one
    wait_until(lambda: len(epochs(loopback_lab, NODES)) == 1, 10, "every node at the same epoch")


def test_killing_the_leader_elects_another_that_commits(loopback_lab: Lab) -> None:
    wait_until(lambda: agreed_leader(loopback_lab, NODES) is not None, 20, "a leader")
    old = agreed_leader(loopback_lab, NODES)
    assert old is not None
    old_term = loopback_lab.status_of(old).quorum.term  # type: ignore[union-attr]
    loopback_lab.kill(old)
    others = [n for n in NODES if n != old]
    wait_until(
        lambda: agreed_leader(loopback_lab, others) not in (None, old),
        20,
        "the survivors elect a new leader",
    )
    new = agreed_leader(loopback_lab, others)
    assert loopback_lab.status_of(others[0]).quorum.term > old_term  # type: ignore[union-attr]
    epoch = create_pool(loopback_lab, "after-failover")
    wait_until(
        lambda: states(loopback_lab, others[0])[old] == "down",
        15,
        f"the vote marks the old leader {old} down",
    )
    loopback_lab.boot(old)
    wait_until(lambda: min(epochs(loopback_lab, NODES)) >= epoch, 15, "the old leader catches up")
    assert agreed_leader(loopback_lab, NODES) == new  # a rejoining node does not disrupt (pre-vote)


def test_the_map_survives_a_restart_of_every_monitor(loopback_lab: Lab) -> None:
    wait_until(lambda: agreed_leader(loopback_lab, NODES) is not None, 20, "a leader")
    epoch = create_pool(loopback_lab, "durable")
    for mon in MONITORS:
        loopback_lab.kill(mon)
    for mon in MONITORS:
        loopback_lab.boot(mon, wait=mon == MONITORS[-1])
    wait_until(
        lambda: agreed_leader(loopback_lab, NODES) is not None, 30, "a leader after the restart"
    )
    status = loopback_lab.status_of("n1")
    assert status.epoch >= epoch
    assert "durable" in {p["name"] for p in status.pools}


def test_a_corrupt_log_tail_is_cut_at_start_with_a_log_line(loopback_lab: Lab) -> None:
    wait_until(lambda: agreed_leader(loopback_lab, NODES) is not None, 20, "a leader")
    victim = next(m for m in MONITORS if m != agreed_leader(loopback_lab, NODES))
    create_pool(loopback_lab, "before-crash")
    loopback_lab.kill(victim)
    log_file = loopback_lab.node_dir(victim) / "data" / "raft" / "log"
    with log_file.open("ab") as f:
        f.write(b"\x40\x00\x00\x00\xde\xad\xbe\xef torn record")  # a record cut short by a crash
    epoch = create_pool(loopback_lab, "while-down")
    loopback_lab.boot(victim)
    agent_log = (loopback_lab.node_dir(victim) / "agent.log").read_text()
    assert "raft log" in agent_log and str(log_file) in agent_log
    wait_until(lambda: loopback_lab.status_of(victim).epoch >= epoch, 15, f"{victim} catches up")
