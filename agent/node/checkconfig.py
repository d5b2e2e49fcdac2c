"""``rack-agent --check-config FILE``: the agent's own validation, without starting anything.

Ansible's agent role runs it on every config before writing it (``template``'s
``validate``), and the validate role on the config in place, so a config the agent would
refuse is refused before it replaces a working one. Beyond parsing (``load_node_config``)
and the keys (``agent.node.main.load``), it checks what only the host can tell: the
disks exist and are writable, the data directory can be made, the secret key is 0600.
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
    data = Path(conf.data_dir)
    existing = data if data.exists() else data.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"the data directory {conf.data_dir} of node {conf.node} is not writable")
    mode = Path(conf.keys.secret).stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"the secret key {conf.keys.secret} has mode {mode:04o}: others can read it; "
            "make it 0600"
        )
    return conf


def summary(path: str, conf: NodeConfig) -> str:
    return (
        f"config {path} is valid: node {conf.node}, roles {','.join(conf.roles)}, "
        f"{len(conf.disks)} disk(s), monitors {','.join(conf.monitors)}"
    )
