"""Deploying the lab rack with the product's own playbooks (DESIGN §10, docs/lab.md).

The lab makes the "hardware" (namespaces on a bridge, or ports on 127.0.0.1, and disk
directories), writes an inventory for it and runs ``ansible-playbook playbooks/site.yml``,
the same run an operator makes against real hosts. Each netns node is reached with the
``netns`` connection plugin (``ip netns exec``), each loopback node with the local
connection. Lab nodes share one filesystem, so every path of a node is under its home.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import yaml

import agent
from agent.config import TimingConfig
from agent.errors import LabError
from agent.lab.state import LabNode, LabState
from agent.node.daemon import Daemon

REPO = Path(agent.__file__).resolve().parent.parent
PLAYBOOKS = REPO / "playbooks"
ANSIBLE_CFG = REPO / "ansible.cfg"
INVENTORY = "inventory.yml"
Progress = Callable[[str], None]


def require_playbooks() -> None:
    if not (PLAYBOOKS / "site.yml").is_file() or not ANSIBLE_CFG.is_file():
        raise LabError(
            f"the playbooks are not at {PLAYBOOKS}: deploying the lab through Ansible needs "
            "a source checkout (or use --deploy direct)"
        )


class NodePaths(msgspec.Struct, frozen=True, kw_only=True):
    """Where a lab node deployed by Ansible keeps what (all under its home)."""

    home: Path

    @property
    def conf(self) -> Path:
        return self.home / "etc" / "agent.toml"

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def pidfile(self) -> Path:
        return self.home / "agent.pid"

    @property
    def log(self) -> Path:
        return self.home / "agent.log"

    def host_vars(self) -> dict[str, str]:
        return {
            "rackcloud_prefix": str(self.home),
            "rackcloud_conf_dir": str(self.conf.parent),
            "rackcloud_data_dir": str(self.home / "data"),
            "rackcloud_venv": str(self.venv),
            "rackcloud_release_dir": str(self.home / "releases"),
            "rackcloud_log_file": str(self.log),
            "rackcloud_pid_file": str(self.pidfile),
        }

    def running_pid(self) -> int | None:
        """The node's agent pid, as the agent's own supervisor recognises it (pidfile and
        ``/proc`` cmdline), or None."""
        python = str(self.venv / "bin" / "python")
        found = Daemon(str(self.conf), self.pidfile, self.log, python).running()
        return None if found is None else found[0]

    def daemon(self, action: str) -> list[str]:
        """The agent's own supervisor, run with the node's installed package."""
        return [
            str(self.venv / "bin" / "python"),
            "-m",
            "agent.node.daemon",
            action,
            "--conf",
            str(self.conf),
            "--pidfile",
            str(self.pidfile),
            "--log",
            str(self.log),
        ]


def host_entry(st: LabState, node: LabNode, paths: NodePaths, disks: list[Path]) -> dict[str, Any]:
    host: dict[str, Any] = {
        "rackcloud_address": node.record.address,
        "rackcloud_rpc_port": node.record.rpc_port,
        "rackcloud_pub_port": node.record.pub_port,
        "rackcloud_data_port": node.record.data_port,
        "rackcloud_disks": [str(d) for d in disks],
        **paths.host_vars(),
        "ansible_python_interpreter": sys.executable,
    }
    if st.mode == "netns":
        host |= {
            "ansible_connection": "netns",
            "ansible_netns_name": node.netns,
            "rackcloud_compute_interface": "eth0",
        }
    else:
        host |= {"ansible_connection": "local"}
    return host


def inventory(
    lab_dir: Path,
    st: LabState,
    *,
    monitors: list[str],
    disks: Callable[[str], list[Path]],
    timing: TimingConfig,
    storage: dict[str, Any],
) -> dict[str, Any]:
    """The lab's inventory: the same groups and variables a production inventory has."""
    hosts = {
        n.name: host_entry(st, n, NodePaths(home=lab_dir / "nodes" / n.name), disks(n.name))
        for n in st.nodes
    }
    names = {name: None for name in hosts}
    return {
        "all": {
            "vars": {
                "rackcloud_cluster": f"lab-{st.lab_id}",
                "rackcloud_keys_dir": str(lab_dir / "keys"),
                "rackcloud_clients": ["admin"],
                "rackcloud_timing": msgspec.to_builtins(timing),
                "rackcloud_storage": storage,
                "rackcloud_compute_service_addresses": st.service_net or "",
                "rackcloud_compute_client_conf": str(lab_dir / "client.toml"),
                "rackcloud_python": getattr(sys, "_base_executable", sys.executable),
                "rackcloud_agent_source": str(REPO),
                "rackcloud_agent_build_dir": str(lab_dir / "releases"),
                "rackcloud_agent_build_isolation": False,
                "rackcloud_agent_pip_extra_args": "--no-deps",
                "rackcloud_agent_shared_site_packages": sysconfig.get_paths()["purelib"],
                "rackcloud_agent_service_manager": "rackcloud",
                "rackcloud_agent_isal_package": "",  # the nodes share the host's libraries
                "rackcloud_health_timeout": 60,
            },
            "hosts": hosts,
            "children": {
                "rackcloud": {
                    "children": {
                        "monitors": {"hosts": {m: None for m in monitors}},
                        "storage": {"hosts": dict(names)},
                        "compute": {"hosts": dict(names)},
                    }
                }
            },
        }
    }


def write_inventory(lab_dir: Path, inv: dict[str, Any]) -> Path:
    path = lab_dir / INVENTORY
    header = "# The lab rack's inventory, written by 'rack lab up' (docs/lab.md).\n"
    path.write_text(header + yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
    return path


def _ansible_playbook() -> str:
    beside = Path(sys.executable).with_name("ansible-playbook")
    return str(beside) if beside.exists() else "ansible-playbook"


def run_playbook(
    lab_dir: Path,
    playbook: str,
    extra_vars: dict[str, Any] | None = None,
    *,
    check: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run one of the product's playbooks on the lab's inventory; returns its recap.

    The recap (``plugins/callback/rackcloud_recap.py``) has per-host counts and every
    task's seconds. Raises ``LabError`` with the failed tasks' messages when it fails.
    """
    require_playbooks()
    name = Path(playbook).stem
    recap_file = lab_dir / f"recap-{name}{'-check' if check else ''}.json"
    recap_file.unlink(missing_ok=True)
    cmd = [_ansible_playbook(), "-i", str(lab_dir / INVENTORY), str(PLAYBOOKS / playbook)]
    if check:
        cmd.append("--check")
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    env = os.environ | {
        "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
        "RACKCLOUD_RECAP": str(recap_file),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    started = time.monotonic()
    with open(lab_dir / "ansible.log", "a", encoding="utf-8") as log:
        log.write(f"\n==== {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if progress is not None and line.startswith(("PLAY [", "TASK [")):
                progress(line.strip(" *\n"))
        rc = proc.wait()
    recap = read_recap(recap_file)
    recap.setdefault("seconds", round(time.monotonic() - started, 2))
    if rc != 0:
        failed = "; ".join(
            f"{f['host']}: {f['msg']}" for f in recap.get("failed", []) if f.get("msg")
        )
        raise LabError(
            f"ansible-playbook {playbook} failed (exit {rc}): "
            f"{failed or 'see the log'}; the log is {lab_dir / 'ansible.log'}"
        )
    return recap


def source_release(dest: Path, version: str) -> Path:
    """A copy of this source tree that says it is ``version``: what an upgrade ships
    (``rolling_update.yml -e rackcloud_agent_source=...``; tests and bench/deploy.py).

    ``version`` must be in normalized PEP 440 form, since it names the wheel."""
    src = dest / f"rackcloud-{version}"
    shutil.copytree(REPO / "agent", src / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    init = src / "agent" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    old = text.split('__version__ = "')[1].split('"')[0]
    init.write_text(text.replace(f'"{old}"', f'"{version}"', 1), encoding="utf-8")
    return src


def read_recap(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
