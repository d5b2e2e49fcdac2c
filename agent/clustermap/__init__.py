"""The cluster map (pure): model, commands, and the apply function Raft replicates."""

from agent.clustermap.apply import Applied, apply
from agent.clustermap.commands import (
    AddNode,
    AddOsd,
    AssignContainer,
    Command,
    CreatePool,
    DeletePool,
    NodeChange,
    PutContainer,
    RemoveContainer,
    RemoveNode,
    SetNodeStates,
    SetOsdState,
    decode_command,
    encode_command,
)
from agent.clustermap.membership import membership_changes, osd_state_changes
from agent.clustermap.model import (
    ClusterMap,
    ContainerInfo,
    ContainerSpec,
    NodeInfo,
    OsdInfo,
    PoolInfo,
    decode_map,
    encode_map,
)

__all__ = [
    "AddNode",
    "AddOsd",
    "Applied",
    "AssignContainer",
    "ClusterMap",
    "Command",
    "ContainerInfo",
    "ContainerSpec",
    "CreatePool",
    "DeletePool",
    "NodeChange",
    "NodeInfo",
    "OsdInfo",
    "PoolInfo",
    "PutContainer",
    "RemoveContainer",
    "RemoveNode",
    "SetNodeStates",
    "SetOsdState",
    "apply",
    "decode_command",
    "decode_map",
    "encode_command",
    "encode_map",
    "membership_changes",
    "osd_state_changes",
]
