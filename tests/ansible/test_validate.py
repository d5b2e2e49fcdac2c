"""The validate role refuses a rack that cannot work, with one sentence, before any change;
and purge is safe on hosts that hold nothing of the rack.

The hosts are this machine through the local connection, each with its own prefix, so
nothing here needs root; a refused run must leave no keyring and no file on any host.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.errors import LabError
from agent.lab.deploy import INVENTORY, run_playbook

HOSTS = ("v1", "v2", "v3")


def inventory(tmp: Path, monitors: tuple[str, ...] = ("v1",), **overrides: Any) -> Path:
    hosts: dict[str, Any] = {}
    for i, name in enumerate(HOSTS):
        home = tmp / "hosts" / name
        disk = home / "disk0"
        disk.mkdir(parents=True)
        hosts[name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "rackcloud_address": "127.0.0.1",
            "rackcloud_rpc_port": 27100 + 3 * i,
            "rackcloud_prefix": str(home),
            "rackcloud_disks": [str(disk)],
        } | overrides.pop(name, {})
    inv = {
        "all": {
            "vars": {"rackcloud_keys_dir": str(tmp / "keys"), **overrides},
            "hosts": hosts,
            "children": {
                "monitors": {"hosts": dict.fromkeys(monitors)},
                "storage": {"hosts": dict.fromkeys(HOSTS)},
                "compute": {"hosts": dict.fromkeys(HOSTS)},
            },
        }
    }
    (tmp / INVENTORY).write_text(yaml.safe_dump(inv), encoding="utf-8")
    return tmp


def refused(tmp: Path) -> str:
    with pytest.raises(LabError) as info:
        run_playbook(tmp, "site.yml")
    return str(info.value)


def nothing_changed(tmp: Path) -> None:
    assert not (tmp / "keys").exists()
    for name in HOSTS:
        made = sorted(p.name for p in (tmp / "hosts" / name).iterdir())
        assert made == ["disk0"], made


def test_an_even_monitor_count_is_refused(tmp_path: Path) -> None:
    message = refused(inventory(tmp_path, monitors=("v1", "v2")))
    assert "the rack needs 1, 3 or 5 monitors" in message and "has 2: v1, v2" in message
    nothing_changed(tmp_path)


def test_a_missing_disk_is_refused(tmp_path: Path) -> None:
    gone = str(tmp_path / "hosts" / "v2" / "disk9")
    message = refused(inventory(tmp_path, v2={"rackcloud_disks": [gone]}))
    assert f"v2: disk {gone} does not exist" in message
    nothing_changed(tmp_path)


def test_an_unplaceable_pool_is_refused(tmp_path: Path) -> None:
    pools = [{"name": "wide", "k": 3, "m": 2, "failure_domain": "host"}]
    message = refused(inventory(tmp_path, rackcloud_pools=pools))
    assert "pool wide (3+2, failure domain host) needs 5 hosts with disks" in message
    assert "the inventory has 3: v1, v2, v3" in message
    nothing_changed(tmp_path)


def test_purge_of_a_rack_never_deployed_changes_nothing(tmp_path: Path) -> None:
    """Purge is safe on hosts with nothing of the rack, compute-only hosts (no disks)
    included: it succeeds and changes nothing."""
    inventory(tmp_path, v3={"rackcloud_disks": []})
    recap = run_playbook(tmp_path, "purge.yml", {"confirm_purge": "yes"})
    assert {h: c["changed"] for h, c in recap["hosts"].items()} == dict.fromkeys(HOSTS, 0)
    assert all(c["failures"] == 0 for c in recap["hosts"].values())
