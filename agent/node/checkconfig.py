"""``rack-agent --check-config FILE``: the agent's own validation, without starting anything.

Ansible's agent role runs it on every config before writing it (``template``'s
``validate``), and the validate role on the config in place, so a config the agent would
refuse is refused before it replaces a working one. Beyond parsing (``load_node_config``)
and the keys (``agent.node.main.load``: the allowlist is for this cluster and enrols this
node's key, and the secret key file is 0600, as ``load_keypair`` insists), it checks what
only the host can tell: the disks exist and are writable, the data directory can be made;
and that the monitors are 1, 3 or 5, which the agent itself does not insist on. Nothing is
created: ``load`` only reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from agent.config import NodeConfig
from agent.enrolment import Allowlist
from agent.errors import ConfigError
from agent.keys import Keypair


def check_node_config(
    path: str, load: Callable[[str], tuple[NodeConfig, Keypair, Allowlist]]
) -> NodeConfig:
    """The config at ``path`` if the agent would run with it; else ``ConfigError``."""
    conf, _keypair, _allowlist = load(path)
    if len(conf.monitors) not in (1, 3, 5):
        raise ConfigError(
            f"config file {path}: field 'monitors': {len(conf.monitors)} monitors; "
            "a rack has 1, 3 or 5 (an odd count)"
        )
    for disk in conf.disks:
        d = Path(disk)
        if not d.exists():
            raise ConfigError(f"disk {disk} of node {conf.node} does not exist")
        if not d.is_dir():
            raise ConfigError(f"disk {disk} of node {conf.node} is not a directory")
        if not os.access(d, os.W_OK | os.X_OK):
            raise ConfigError(f"disk {disk} of node {conf.node} is not writable")
    _check_data_dir(conf)
    return conf


def _check_data_dir(conf: NodeConfig) -> None:
    """The agent makes the data directory at start: it, or else its parent, must take files."""
    data = Path(conf.data_dir)
    where = f"the data directory {data} of node {conf.node}"
    if data.exists():
        if not data.is_dir():
            raise ConfigError(f"{where} is not a directory")
        if not os.access(data, os.W_OK | os.X_OK):
            raise ConfigError(f"{where} is not writable")
        return
    if not data.parent.is_dir():
        what = "is not a directory" if data.parent.exists() else "does not exist"
        raise ConfigError(f"{where} cannot be made: its parent {data.parent} {what}")
    if not os.access(data.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{where} cannot be made: its parent {data.parent} is not writable")


def summary(path: str, conf: NodeConfig) -> str:
    return (
        f"config {path} is valid: node {conf.node}, roles {','.join(conf.roles)}, "
        f"{len(conf.disks)} disk(s), monitors {','.join(conf.monitors)}"
    )
