"""The lab's record of what it made, written before it makes anything.

``rack lab down`` works from this file, so it can clean up after an ``up`` that failed
half way: every name it could have created derives from the lab id stored here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from agent.errors import LabError
from agent.record import NodeRecord

Mode = Literal["netns", "loopback"]
STATE_FILE = "lab.json"


class LabNode(msgspec.Struct, kw_only=True):
    record: NodeRecord
    """Name, address and ports (the key is in the lab's keyring)."""
    netns: str | None = None
    veth: str | None = None
    """Host side of the node's veth pair (netns mode): the link ``kill``/``partition`` cut."""
    pid: int | None = None

    @property
    def name(self) -> str:
        return self.record.name


class LabState(msgspec.Struct, kw_only=True):
    lab_id: str
    mode: Mode
    bridge: str | None = None
    subnet: str | None = None
    service_net: str | None = None
    """The rack's pool of container service addresses."""
    disks: int = 2
    """Disks per node: directories under each node's home (``disk0``, ``disk1``, ...)."""
    mounts: list[str] = msgspec.field(default_factory=list)
    """Small tmpfs disks the lab mounted (``--disk-mib``), unmounted by ``down``."""
    nodes: list[LabNode] = msgspec.field(default_factory=list)
    deployed: Literal["direct", "ansible"] = "direct"
    """How the agents were started: by ``playbooks/site.yml``, or directly by the lab."""

    def node(self, name: str) -> LabNode:
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes)
        raise LabError(f"the lab has no node {name!r} (it has {known})")


def state_path(lab_dir: Path) -> Path:
    return lab_dir / STATE_FILE


def save(lab_dir: Path, state: LabState) -> None:
    lab_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_path(lab_dir).with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(state)))
    os.replace(tmp, state_path(lab_dir))


def load(lab_dir: Path) -> LabState | None:
    try:
        return msgspec.json.decode(state_path(lab_dir).read_bytes(), type=LabState)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise LabError(f"the lab state {state_path(lab_dir)} is unreadable: {exc}") from None


def require(lab_dir: Path) -> LabState:
    state = load(lab_dir)
    if state is None:
        raise LabError(f"no lab is up in {lab_dir}; run 'rack lab up' first")
    return state
