"""Raft consensus for the monitors' cluster map: a pure core, its on-disk log, a simulator.

The core (:class:`RaftNode`) is a synchronous state machine with no I/O, clocks or global
randomness; the shell feeds it ticks, messages and proposals and handles each
:class:`Ready` as :mod:`agent.raft.ready` describes (persist, then send, then apply);
:class:`RaftDriver` runs that loop for it.
See ``docs/raft.md``.
"""

from agent.raft.core import RaftNode
from agent.raft.driver import RaftDriver, StateMachine
from agent.raft.errors import (
    ConfChangeRejected,
    DriverBusy,
    LeaderTransferring,
    NotLeader,
    QuorumLost,
    RaftError,
    StorageCorrupt,
    TransferRejected,
)
from agent.raft.memory import MemoryStorage
from agent.raft.messages import (
    AnyRaftMessage,
    AppendEntries,
    AppendResp,
    ConfChange,
    ConfOp,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    PersistentState,
    RaftHeartbeat,
    RaftHeartbeatResp,
    RaftMessage,
    RequestVote,
    Snapshot,
    TimeoutNow,
    VoteResp,
    decode_conf_change,
    decode_message,
    encode_message,
)
from agent.raft.ready import LogStore, RaftRole, Ready, SoftState, needs_persist, persist

__all__ = [
    "AnyRaftMessage",
    "AppendEntries",
    "AppendResp",
    "ConfChange",
    "ConfChangeRejected",
    "ConfOp",
    "DriverBusy",
    "Entry",
    "EntryKind",
    "HardState",
    "InstallSnapshot",
    "LeaderTransferring",
    "LogStore",
    "MemoryStorage",
    "NotLeader",
    "PersistentState",
    "QuorumLost",
    "RaftDriver",
    "RaftError",
    "RaftHeartbeat",
    "RaftHeartbeatResp",
    "RaftMessage",
    "RaftNode",
    "RaftRole",
    "Ready",
    "RequestVote",
    "Snapshot",
    "SoftState",
    "StateMachine",
    "StorageCorrupt",
    "TimeoutNow",
    "TransferRejected",
    "VoteResp",
    "decode_conf_change",
    "decode_message",
    "encode_message",
    "needs_persist",
    "persist",
]
