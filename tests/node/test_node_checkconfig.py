"""``rack-agent --check-config``: what the agent would refuse, refused before it starts.

Real files: a keyring made by ``create_keyring`` and a node config as the lab writes one;
the command line is the real ``python -m agent.node.main``, as Ansible's ``validate`` runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config import dump_toml
from agent.errors import ConfigError, KeyringError, RackError
from agent.keys import create_keyring
from agent.node.checkconfig import check_node_config, summary
from agent.node.main import load

CLUSTER = "rc-check"


def write_config(base: Path, **overrides: Any) -> Path:
    """A complete config of node n1 (one of three monitors, two disks) and its keyring."""
    keys = base / "keys"
    if not keys.exists():
        create_keyring(keys, ["n1", "n2", "n3"], ["admin"], cluster=CLUSTER)
    home = base / "n1"
    disks = [home / "disk0", home / "disk1"]
    for disk in disks:
        disk.mkdir(parents=True, exist_ok=True)
    conf: dict[str, Any] = {
        "cluster": CLUSTER,
        "node": "n1",
        "bind": "127.0.0.1",
        "rpc_port": 27400,
        "pub_port": 27401,
        "data_port": 27402,
        "roles": ["mon", "osd", "compute"],
        "monitors": ["n1", "n2", "n3"],
        "data_dir": str(home / "data"),
        "disks": [str(d) for d in disks],
        "keys": {
            "secret": str(keys / "secret" / "n1.key"),
            "allowlist": str(keys / "allowlist.toml"),
        },
    } | overrides
    path = home / "agent.toml"
    path.write_text(dump_toml(conf), encoding="utf-8")
    return path


def refusal(path: Path) -> RackError:
    with pytest.raises(RackError) as info:
        check_node_config(str(path), load)
    return info.value


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.node.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tree(base: Path) -> list[tuple[str, int]]:
    return sorted((str(p), p.stat().st_mode) for p in base.rglob("*"))


def test_a_valid_config_passes_and_nothing_is_created(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    before = tree(tmp_path)
    conf = check_node_config(str(path), load)
    assert conf.node == "n1" and len(conf.disks) == 2
    assert summary(str(path), conf) == (
        f"config {path} is valid: node n1, roles mon,osd,compute, 2 disk(s), monitors n1,n2,n3"
    )
    done = cli("--check-config", str(path))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == summary(str(path), conf) + "\n"
    assert tree(tmp_path) == before  # no data directory, no state directory, no log
    assert not (tmp_path / "n1" / "data").exists()


def test_an_existing_writable_data_directory_passes(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / "n1" / "data").mkdir()
    assert check_node_config(str(path), load).data_dir == str(tmp_path / "n1" / "data")


def test_a_missing_disk_is_refused(tmp_path: Path) -> None:
    gone = tmp_path / "n1" / "disk9"
    path = write_config(tmp_path, disks=[str(tmp_path / "n1" / "disk0"), str(gone)])
    err = refusal(path)
    assert isinstance(err, ConfigError)
    assert str(err) == f"disk {gone} of node n1 does not exist"
    done = cli("--check-config", str(path))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"rack-agent: disk {gone} of node n1 does not exist\n"


def test_a_disk_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    disk = tmp_path / "n1" / "disk1"
    disk.rmdir()
    disk.write_text("not a directory\n", encoding="utf-8")
    assert str(refusal(path)) == f"disk {disk} of node n1 is not a directory"


def test_an_unwritable_disk_is_refused(tmp_path: Path) -> None:
    """Mode 0555 for a user; root writes anywhere, so for root it is a read-only mount."""
    path = write_config(tmp_path)
    disk = tmp_path / "n1" / "disk0"
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(disk)], check=True)
    else:
        disk.chmod(0o555)
    try:
        assert str(refusal(path)) == f"disk {disk} of node n1 is not writable"
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(disk)], check=True)
        disk.chmod(0o755)


def test_a_secret_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    key = tmp_path / "keys" / "secret" / "n1.key"
    key.chmod(0o644)
    err = refusal(path)
    assert isinstance(err, KeyringError)
    assert f"key file {key} has mode 0644, readable by others" in str(err)
    done = cli("--check-config", str(path))
    assert done.returncode == 2 and f"run 'chmod 600 {key}'" in done.stderr
    key.chmod(0o600)
    assert check_node_config(str(path), load).node == "n1"


@pytest.mark.parametrize(
    ("roles", "monitors"),
    [(["mon", "osd"], ["n1", "n2"]), (["osd"], []), (["mon"], ["n1", "n2", "n3", "n4"])],
)
def test_an_even_number_of_monitors_is_refused(
    tmp_path: Path, roles: list[str], monitors: list[str]
) -> None:
    path = write_config(tmp_path, roles=roles, monitors=monitors)
    err = refusal(path)
    assert isinstance(err, ConfigError)
    assert f"{len(monitors)} monitors; a rack has 1, 3 or 5" in str(err)


def test_one_or_five_monitors_pass(tmp_path: Path) -> None:
    assert check_node_config(str(write_config(tmp_path, monitors=["n1"])), load)
    five = ["n1", "n2", "n3", "n4", "n5"]
    assert check_node_config(str(write_config(tmp_path, monitors=five)), load)


def test_a_data_directory_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    orphan = tmp_path / "nowhere" / "data"
    err = refusal(write_config(tmp_path, data_dir=str(orphan)))
    assert str(err) == (
        f"the data directory {orphan} of node n1 cannot be made: "
        f"its parent {orphan.parent} does not exist"
    )
    a_file = tmp_path / "n1" / "data"
    a_file.write_text("", encoding="utf-8")
    err = refusal(write_config(tmp_path, data_dir=str(a_file)))
    assert str(err) == f"the data directory {a_file} of node n1 is not a directory"


def test_the_keys_must_be_of_this_cluster_and_this_node(tmp_path: Path) -> None:
    err = refusal(write_config(tmp_path, cluster="rc-other"))
    assert str(err) == f"the allowlist is for cluster {CLUSTER}, the config says rc-other"
    n2_key = str(tmp_path / "keys" / "secret" / "n2.key")
    keys = {"secret": n2_key, "allowlist": str(tmp_path / "keys" / "allowlist.toml")}
    err = refusal(write_config(tmp_path, keys=keys))
    assert str(err) == "node n1 is not enrolled with this key in the allowlist"


def test_the_config_parser_stays_strict(tmp_path: Path) -> None:
    path = write_config(tmp_path, disk=["/typo"])
    done = cli("--check-config", str(path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"rack-agent: config file {path}: field 'disk' is not a known setting (a typo?)\n"
    )
    done = cli("--check-config", str(tmp_path / "missing.toml"))
    assert done.returncode == 2
    assert done.stderr == f"rack-agent: config file {tmp_path / 'missing.toml'} does not exist\n"


def test_exactly_one_of_conf_and_check_config(tmp_path: Path) -> None:
    path = str(write_config(tmp_path))
    both = cli("--conf", path, "--check-config", path)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    neither = cli()
    assert neither.returncode == 2 and "one of the arguments" in neither.stderr
