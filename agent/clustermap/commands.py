"""Commands that change the cluster map: the entries of the Raft log.

A command carries everything its effect depends on (including the leader's ``at`` time
where time matters), so applying it is a pure function and every monitor computes the
same map. Commands are a msgspec tagged union encoded as msgpack.
"""

from __future__ import annotations

import msgspec

from agent.clustermap.model import ContainerSpec, NodeState, Want
from agent.placement import Level, OsdState
from agent.record import NodeRecord


class _Cmd(msgspec.Struct, frozen=True, kw_only=True, tag_field="op"):
    pass


class AddNode(_Cmd, frozen=True, kw_only=True, tag="add_node"):
    """Admit a node (heard by the leader), or refresh its record."""

    node: NodeRecord
    incarnation: int = 0
    rack: str = "rack0"


class NodeChange(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: NodeState
    incarnation: int | None = None


class SetNodeStates(_Cmd, frozen=True, kw_only=True, tag="set_node_states"):
    """The vote's outcome: nodes going down, out, or back up; ``at`` is the leader's clock."""

    changes: tuple[NodeChange, ...]
    at: float


class RemoveNode(_Cmd, frozen=True, kw_only=True, tag="remove_node"):
    name: str


class AddOsd(_Cmd, frozen=True, kw_only=True, tag="add_osd"):
    node: str
    path: str
    weight: int


class SetOsdState(_Cmd, frozen=True, kw_only=True, tag="set_osd_state"):
    id: int
    state: OsdState


class CreatePool(_Cmd, frozen=True, kw_only=True, tag="create_pool"):
    name: str
    k: int
    m: int
    plugin: str = "rs"
    pg_num: int = 64
    failure_domain: Level = "host"


class DeletePool(_Cmd, frozen=True, kw_only=True, tag="delete_pool"):
    name: str


class PutContainer(_Cmd, frozen=True, kw_only=True, tag="put_container"):
    spec: ContainerSpec


class AssignContainer(_Cmd, frozen=True, kw_only=True, tag="assign_container"):
    """Move a container; ``generation`` must be the current one (compare-and-set)."""

    name: str
    node: str | None
    generation: int


class RemoveContainer(_Cmd, frozen=True, kw_only=True, tag="remove_container"):
    name: str


class SetContainerWant(_Cmd, frozen=True, kw_only=True, tag="set_container_want"):
    """``rack ct stop|start``: the container stays assigned; its node stops or starts it."""

    name: str
    want: Want


class MarkPending(_Cmd, frozen=True, kw_only=True, tag="mark_pending"):
    """No node can take the container now; ``reason`` says why (compare-and-set)."""

    name: str
    generation: int
    reason: str


class SetServiceNet(_Cmd, frozen=True, kw_only=True, tag="set_service_net"):
    cidr: str


Command = (
    AddNode
    | SetNodeStates
    | RemoveNode
    | AddOsd
    | SetOsdState
    | CreatePool
    | DeletePool
    | PutContainer
    | AssignContainer
    | RemoveContainer
    | SetContainerWant
    | MarkPending
    | SetServiceNet
)

_decoder = msgspec.msgpack.Decoder(Command)


def encode_command(cmd: Command) -> bytes:
    return msgspec.msgpack.encode(cmd)


def decode_command(data: bytes) -> Command:
    """Raises ``msgspec.DecodeError``/``ValidationError`` on bad bytes (the shell's job)."""
    return _decoder.decode(data)
