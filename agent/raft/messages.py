"""Data types the Raft core exchanges with its shell: log entries, persisted state, messages.

Everything here is a frozen ``msgspec.Struct`` so the transport can send messages as one
tagged union (:func:`encode_message` / :func:`decode_message`) and the storage can write
entries and state as msgpack without a second schema.
"""

from __future__ import annotations

import enum

import msgspec

__all__ = [
    "AnyRaftMessage",
    "AppendEntries",
    "AppendResp",
    "ConfChange",
    "ConfOp",
    "Entry",
    "EntryKind",
    "HardState",
    "InstallSnapshot",
    "PersistentState",
    "RaftHeartbeat",
    "RaftHeartbeatResp",
    "RaftMessage",
    "RequestVote",
    "Snapshot",
    "TimeoutNow",
    "VoteResp",
    "decode_conf_change",
    "decode_message",
    "encode_conf_change",
    "encode_message",
]


class EntryKind(enum.IntEnum):
    """What a log entry carries; only ``NORMAL`` entries with data are application commands."""

    NORMAL = 0
    CONF = 1


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """One log entry. A new leader appends an empty ``NORMAL`` entry to commit older terms."""

    index: int
    term: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""


class ConfOp(enum.StrEnum):
    """A single-server membership change; ``BOOTSTRAP`` is only ever entry 1 of a new
    cluster, written by its first leader so every log starts with its configuration."""

    ADD = "add"
    REMOVE = "remove"
    BOOTSTRAP = "bootstrap"


class ConfChange(msgspec.Struct, frozen=True):
    """Payload of a ``CONF`` entry; it carries the resulting voter set so that applying it
    never depends on which earlier configuration a node happens to hold."""

    op: ConfOp
    node: int
    voters: tuple[int, ...]


class Snapshot(msgspec.Struct, frozen=True):
    """Application state up to ``index`` plus the voter set in force at that index."""

    index: int
    term: int
    voters: tuple[int, ...]
    data: bytes = b""


class HardState(msgspec.Struct, frozen=True):
    """The state that must survive a crash before any message depending on it is sent."""

    term: int = 0
    vote: int | None = None
    commit: int = 0


class PersistentState(msgspec.Struct, frozen=True):
    """What a node restarts from: exactly what the shell persisted, nothing else."""

    hard_state: HardState = HardState()
    snapshot: Snapshot | None = None
    entries: tuple[Entry, ...] = ()


class RaftMessage(msgspec.Struct, frozen=True, tag=True):
    """Base of every message between nodes; ``term`` is the sender's term."""

    src: int
    dst: int
    term: int


class AppendEntries(RaftMessage, frozen=True, tag=True):
    """Replicate ``entries`` after (``prev_index``, ``prev_term``); also carries the commit."""

    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


class AppendResp(RaftMessage, frozen=True, tag=True):
    """Answer to AppendEntries or InstallSnapshot.

    On success ``index`` is the highest index known to match the leader. On reject
    ``index`` is the rejected ``prev_index`` and (``hint_index``, ``hint_term``) let the
    leader skip a whole conflicting term at once (fast backtracking).
    """

    index: int
    reject: bool = False
    hint_index: int = 0
    hint_term: int = 0


class RaftHeartbeat(RaftMessage, frozen=True, tag="Heartbeat"):
    """Leader liveness; ``commit`` is capped at what this follower is known to hold.

    The wire tag stays ``"Heartbeat"`` (the class was renamed, the encoding was not)."""

    commit: int


class RaftHeartbeatResp(RaftMessage, frozen=True, tag="HeartbeatResp"):
    """Lets the leader count the follower as reachable (check-quorum) and resume sending.

    The wire tag stays ``"HeartbeatResp"``."""


class RequestVote(RaftMessage, frozen=True, tag=True):
    """A (pre-)vote request. ``pre`` asks without raising anyone's term; ``transfer`` marks a
    campaign started by TimeoutNow, which may break a follower's leader lease."""

    last_index: int
    last_term: int
    pre: bool = False
    transfer: bool = False


class VoteResp(RaftMessage, frozen=True, tag=True):
    """Answer to RequestVote; a granted pre-vote carries the requested term."""

    pre: bool
    granted: bool


class InstallSnapshot(RaftMessage, frozen=True, tag=True):
    """Sent instead of entries the leader has already compacted away."""

    snapshot: Snapshot


class TimeoutNow(RaftMessage, frozen=True, tag=True):
    """Leader transfer: the target campaigns at once, skipping pre-vote."""


AnyRaftMessage = (
    AppendEntries
    | AppendResp
    | RaftHeartbeat
    | RaftHeartbeatResp
    | RequestVote
    | VoteResp
    | InstallSnapshot
    | TimeoutNow
)

_msg_encoder = msgspec.msgpack.Encoder()
_msg_decoder: msgspec.msgpack.Decoder[AnyRaftMessage] = msgspec.msgpack.Decoder(AnyRaftMessage)
_conf_decoder = msgspec.msgpack.Decoder(ConfChange)


def encode_message(msg: RaftMessage) -> bytes:
    """Encode any message as msgpack with its type tag."""
    return _msg_encoder.encode(msg)


def decode_message(data: bytes) -> AnyRaftMessage:
    """Decode a message produced by :func:`encode_message` (raises ``msgspec.DecodeError``)."""
    return _msg_decoder.decode(data)


def encode_conf_change(cc: ConfChange) -> bytes:
    """The data bytes of a ``CONF`` entry."""
    return _msg_encoder.encode(cc)


def decode_conf_change(data: bytes) -> ConfChange:
    """Read back the data of a ``CONF`` entry."""
    return _conf_decoder.decode(data)
