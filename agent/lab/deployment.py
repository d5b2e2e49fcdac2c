"""The deployment methods of :class:`agent.lab.Lab` (a mixin keeps that class small).

``rack lab up`` makes namespaces or ports and disks, then deploys the agents with
``playbooks/site.yml`` (``agent.lab.deploy``); ``grow`` adds the hardware of one more
node for ``add_node.yml``. A node deployed by Ansible is booted again with its own
installed package and the agent's own supervisor, as Ansible started it.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from agent.config import TimingConfig
from agent.errors import LabError
from agent.lab import deploy, netns, state
from agent.lab.state import LabNode, LabState
from agent.record import DEFAULT_DATA_PORT, NodeRecord


class Deployment:
    dir: Path
    progress: Callable[[str], None]

    def node_dir(self, name: str) -> Path:
        raise NotImplementedError

    def _make_disks(self, st: LabState, node: LabNode, disk_mib: int | None) -> None:
        raise NotImplementedError

    def disk_dirs(self, st: LabState, name: str) -> list[Path]:
        raise NotImplementedError

    # ---- hardware ----------------------------------------------------------------------

    def _add_netns_node(self, st: LabState, name: str, index: int) -> LabNode:
        """A namespace on the lab's bridge with the ``index``-th node address."""
        assert st.subnet and st.bridge
        subnet = ipaddress.IPv4Network(st.subnet)
        node = LabNode(
            record=NodeRecord(
                name=name,
                address=str(list(subnet.hosts())[10 + index - 1]),
                data_port=DEFAULT_DATA_PORT,
            ),
            netns=netns.netns_name(st.lab_id, name),
            veth=netns.veth_name(st.lab_id, index),
        )
        st.nodes.append(node)
        state.save(self.dir, st)  # before it exists, so 'down' removes it
        assert node.netns and node.veth
        netns.create_node(
            node.netns,
            node.veth,
            st.bridge,
            ipaddress.IPv4Interface(f"{node.record.address}/{subnet.prefixlen}"),
        )
        return node

    def grow(self, disk_mib: int | None = None) -> str:
        """Add the hardware of one more node (namespace or ports, and disks) to an
        Ansible-deployed lab and to its inventory; ``add_node.yml`` then deploys it."""
        from agent.lab.rack import (  # noqa: PLC0415 - rack imports this module
            _free_port_block,
            loopback_record,
            write_client_config,
        )

        st = state.require(self.dir)
        if st.deployed != "ansible":
            raise LabError("only a lab deployed with Ansible ('rack lab up') can grow")
        index = len(st.nodes) + 1
        name = f"n{index}"
        if st.mode == "netns":
            node = self._add_netns_node(st, name, index)
        else:
            node = LabNode(record=loopback_record(name, _free_port_block(3)))
            st.nodes.append(node)
        state.save(self.dir, st)
        self._make_disks(st, node, disk_mib)
        write_client_config(self.dir, st)  # the operator's CLI reaches the new node too
        inv_path = self.dir / deploy.INVENTORY
        inv = yaml.safe_load(inv_path.read_text(encoding="utf-8"))
        paths = deploy.NodePaths(home=self.node_dir(name))
        inv["all"]["hosts"][name] = deploy.host_entry(st, node, paths, self.disk_dirs(st, name))
        for group in ("storage", "compute"):
            inv["all"]["children"]["rackcloud"]["children"][group]["hosts"][name] = None
        deploy.write_inventory(self.dir, inv)
        return name

    # ---- deploying ---------------------------------------------------------------------

    def deploy(
        self,
        st: LabState,
        timing: TimingConfig,
        storage: dict[str, Any],
        monitors: list[str],
    ) -> dict[str, Any]:
        """Write the lab's inventory and run ``site.yml`` on it; returns the recap."""
        inv = deploy.inventory(
            self.dir,
            st,
            monitors=monitors,
            disks=lambda n: self.disk_dirs(st, n),
            timing=timing,
            storage=storage,
        )
        deploy.write_inventory(self.dir, inv)
        self.progress(f"deploying {len(st.nodes)} nodes with ansible-playbook playbooks/site.yml")
        recap = self.playbook("site.yml")
        self.progress(
            f"site.yml converged in {recap.get('seconds', 0):.1f} s; "
            f"the log is {self.dir / 'ansible.log'}"
        )
        return recap

    def playbook(
        self, name: str, extra_vars: dict[str, Any] | None = None, *, check: bool = False
    ) -> dict[str, Any]:
        """Run one of the product's playbooks on the lab; note the agents' new pids."""
        try:
            return deploy.run_playbook(
                self.dir, name, extra_vars, check=check, progress=self._ansible_progress
            )
        finally:
            self._note_pids()

    def playbook_recap(self, name: str) -> dict[str, Any]:
        """The recap of the last run of playbook ``name`` (e.g. the one ``up`` made)."""
        return deploy.read_recap(self.dir / f"recap-{Path(name).stem}.json")

    def pid_of(self, name: str) -> int | None:
        return state.require(self.dir).node(name).pid

    def _ansible_progress(self, line: str) -> None:
        if line.startswith("PLAY ["):
            self.progress(f"  {line}")

    def _note_pids(self) -> None:
        st = state.load(self.dir)
        if st is None or st.deployed != "ansible":
            return
        for node in st.nodes:
            node.pid = deploy.NodePaths(home=self.node_dir(node.name)).running_pid()
        state.save(self.dir, st)

    def _start_deployed(self, st: LabState, node: LabNode) -> None:
        """Boot a node as Ansible runs it: its own package, with the agent's supervisor."""
        paths = deploy.NodePaths(home=self.node_dir(node.name))
        cmd = paths.daemon("start")
        if st.mode == "netns":
            assert node.netns
            cmd = ["ip", "netns", "exec", node.netns, *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            answer = {"message": done.stderr.strip() or "no answer"}
        if done.returncode != 0:
            raise LabError(f"could not start {node.name}: {answer.get('message')}")
        node.pid = answer.get("pid")
