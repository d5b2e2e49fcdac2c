from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_client_config, load_node_config
from agent.errors import ConfigError

GOOD = """
cluster = "lab-1"
node = "n1"
bind = "127.0.0.1"
rpc_port = 7100
pub_port = 7101
roles = ["mon", "osd"]
monitors = ["n1", "n2", "n3"]
data_dir = "data"
disks = ["disk0"]
[keys]
secret = "keys/n1.key"
allowlist = "keys/allowlist.toml"
[timing]
heartbeat_interval = 0.1
suspect_after = 0.3
dead_after = 0.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_good_config_loads_frozen_with_paths_resolved(tmp_path: Path) -> None:
    conf = load_node_config(write(tmp_path, GOOD))
    assert conf.node == "n1" and conf.roles == ("mon", "osd")
    assert conf.timing.dead_after == 0.5
    assert conf.keys.secret == str(tmp_path / "keys" / "n1.key")
    assert conf.disks == (str(tmp_path / "disk0"),)
    with pytest.raises(AttributeError):
        conf.node = "n2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("rpc_port = 7100", 'rpc_port = "x"'), "rpc_port"),
        (("rpc_port = 7100", "rpc_port = 70000"), "rpc_port"),
        (('node = "n1"', 'node = "N 1!"'), "node"),
        (('bind = "127.0.0.1"', 'bind = "0.0.0.0"'), "bind"),
        (('bind = "127.0.0.1"', 'bind = "localhost"'), "bind"),
        (('roles = ["mon", "osd"]', 'roles = ["mon", "chef"]'), "roles"),
        (("pub_port = 7101", "pub_port = 7100"), "pub_port"),
        (("dead_after = 0.5", "dead_after = 0.2"), "timing"),
        (("heartbeat_interval = 0.1", "heartbeat_interval = -1"), "timing.heartbeat_interval"),
        (('data_dir = "data"', 'data_dir = "data"\nbogus = 1'), "bogus"),
        (('monitors = ["n1", "n2", "n3"]', 'monitors = ["n2", "n3"]'), "monitors"),
        (('monitors = ["n1", "n2", "n3"]', 'monitors = ["n1", "n1"]'), "monitors"),
        (("dead_after = 0.5", "dead_after = 0.5\nelection_ticks = 1"), "timing.election_ticks"),
    ],
)
def test_bad_field_is_named_in_one_sentence(
    tmp_path: Path, change: tuple[str, str], field: str
) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        load_node_config(write(tmp_path, text))
    message = str(info.value)
    assert field in message
    assert "\n" not in message


def test_missing_required_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cluster"):
        load_node_config(write(tmp_path, GOOD.replace('cluster = "lab-1"', "")))


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_node_config(write(tmp_path, "cluster = [unclosed"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_node_config(tmp_path / "nope.toml")


def test_client_config_needs_nodes(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text('cluster = "lab-1"\nnodes = []\n[keys]\nsecret = "a"\nallowlist = "b"\n')
    with pytest.raises(ConfigError, match="nodes"):
        load_client_config(path)
    path.write_text(
        'cluster = "lab-1"\n[keys]\nsecret = "a"\nallowlist = "b"\n'
        '[[nodes]]\nname = "n1"\naddress = "10.0.0.1"\n'
    )
    conf = load_client_config(path)
    assert conf.nodes[0].rpc_port == 7100 and conf.keys.secret == str(tmp_path / "a")


CLIENT = 'cluster = "lab-1"\n[keys]\nsecret = "a"\nallowlist = "b"\n[[nodes]]\nname = "n1"\n'


def test_a_typo_in_a_client_node_entry_is_named(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text(CLIENT + 'address = "10.0.0.1"\nrcp_port = 7100\n')
    with pytest.raises(ConfigError, match=r"field 'nodes\.rcp_port' is not a known setting"):
        load_client_config(path)


def test_a_client_node_port_out_of_range_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text(CLIENT + 'address = "10.0.0.1"\npub_port = 70000\n')
    with pytest.raises(ConfigError, match=r"70000 is not a port \(1-65535\)"):
        load_client_config(path)
