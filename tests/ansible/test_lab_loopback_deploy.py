"""Loopback mode deploys through site.yml too (the local connection, per-node ports and
prefixes): what ``make demo`` and ``rack lab up`` do for a user who is not root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.lab import Lab
from agent.lab.deploy import NodePaths
from tests.helpers import wait_until

pytestmark = pytest.mark.integration
NODES = ("n1", "n2", "n3")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("loopdeploy") / "lab")
    lab.up(3, "loopback", deploy="ansible", timeout=60.0)
    try:
        yield lab
    finally:
        lab.down()


def test_loopback_nodes_run_their_own_installed_agents(lab: Lab) -> None:
    recap = lab.playbook_recap("site.yml")
    assert set(recap["hosts"]) == set(NODES)
    status = lab.status_of("n1")
    assert status.formed, status.forming
    ports = {n.name: n.rpc_port for n in status.nodes}
    assert len(set(ports.values())) == 3  # one machine, a port each
    for node in NODES:
        paths = NodePaths(home=lab.node_dir(node))
        pid = lab.pid_of(node)
        assert pid is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0] == str(paths.venv / "bin" / "python").encode()
        assert str(paths.conf).encode() in cmdline


def test_a_killed_loopback_node_boots_with_its_installed_agent(lab: Lab) -> None:
    old = lab.pid_of("n2")
    lab.kill("n2")
    assert lab.processes_of("n2") == []
    lab.boot("n2", timeout=60.0)
    new = lab.pid_of("n2")
    assert new is not None and new != old
    cmdline = Path(f"/proc/{new}/cmdline").read_bytes()
    assert str(NodePaths(home=lab.node_dir("n2")).venv).encode() in cmdline
    assert lab.status_of("n1").formed


def test_down_leaves_no_agent_of_the_lab(lab: Lab) -> None:
    pids = [p for p in (lab.pid_of(n) for n in NODES) if p is not None]
    assert len(pids) == 3
    lab.down()
    # not our children: init reaps them a moment after they exit
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in pids), 10.0, "agents gone")
