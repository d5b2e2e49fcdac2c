"""Raft consensus for the monitors' cluster map: a pure core, its on-disk log, a simulator.

The core (:class:`RaftNode`) is a synchronous state machine with no I/O, clocks or global
randomness; the shell feeds it ticks, messages and proposals and handles each
:class:`Ready` as :mod:`agent.raft.ready` describes (persist, then send, then apply).
See ``docs/raft.md``.
"""

from agent.raft.core import RaftNode
from agent.raft.errors import (
    ConfChangeRejected,
    LeaderTransferring,
    NotLeader,
    QuorumLost,
    RaftError,
    StorageCorrupt,
    TransferRejected,
)
from agent.raft.memory import MemoryStorage
from agent.raft.messages import (
    AnyMessage,
    AppendEntries,
    AppendResp,
    ConfChange,
    ConfOp,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResp,
    InstallSnapshot,
    Message,
    PersistentState,
    RequestVote,
    Snapshot,
    TimeoutNow,
    VoteResp,
    decode_conf_change,
    decode_message,
    encode_message,
)
from agent.raft.ready import LogStore, Ready, Role, SoftState, persist
from agent.raft.storage import DiskStorage

__all__ = [
    "AnyMessage",
    "AppendEntries",
    "AppendResp",
    "ConfChange",
    "ConfChangeRejected",
    "ConfOp",
    "DiskStorage",
    "Entry",
    "EntryKind",
    "HardState",
    "Heartbeat",
    "HeartbeatResp",
    "InstallSnapshot",
    "LeaderTransferring",
    "LogStore",
    "MemoryStorage",
    "Message",
    "NotLeader",
    "PersistentState",
    "QuorumLost",
    "RaftError",
    "RaftNode",
    "Ready",
    "RequestVote",
    "Role",
    "Snapshot",
    "SoftState",
    "StorageCorrupt",
    "TimeoutNow",
    "TransferRejected",
    "VoteResp",
    "decode_conf_change",
    "decode_message",
    "encode_message",
    "persist",
]
