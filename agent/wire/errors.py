"""Error codes: one enumerated set, and the one table that maps exceptions onto it.

A refusal travels as :class:`ErrorReply`: ``code`` is stable for scripts, ``message`` is
one sentence for people, ``retryable`` says whether the same request may succeed later.
"""

from __future__ import annotations

from enum import StrEnum

from agent.errors import (
    BadRequest,
    Busy,
    DataCorrupt,
    Fenced,
    LeadershipChanged,
    NoLeader,
    NoQuorum,
    NotAllowed,
    NotEnoughShards,
    NotFound,
    NotLeasing,
    OutOfSpace,
    RackError,
    RemoteError,
    RpcTimeout,
    StorageFault,
    UnexpectedMessage,
    Unreachable,
    WireError,
)
from agent.wire.base import Msg


class ErrorCode(StrEnum):
    MALFORMED = "malformed"
    """The frames do not decode to a message."""
    UNEXPECTED = "unexpected"
    """This node does not answer that type of message."""
    NOT_ALLOWED = "not_allowed"
    """The sender's key may not send that message."""
    BAD_REQUEST = "bad_request"
    """The message decodes but asks for something that cannot be done as asked."""
    UNREACHABLE = "unreachable"
    """The node that should act on the request cannot be reached from here."""
    TIMED_OUT = "timed_out"
    """The request went on, but no answer came back in time: it may or may not have been
    done (a map change may yet commit)."""
    NO_QUORUM = "no_quorum"
    """No majority of the monitors is reachable: map changes cannot commit."""
    NO_LEADER = "no_leader"
    """A majority is reachable but no monitor leads yet: an election is running."""
    LEADERSHIP_CHANGED = "leadership_changed"
    """The leader changed before the change committed: it was not applied."""
    BUSY = "busy"
    """The receiver cannot take it now (a leader transfer, say)."""
    NOT_FOUND = "not_found"
    """No such object, shard or pool."""
    CORRUPT = "corrupt"
    """The stored bytes fail their checksum; they are not returned."""
    DISK_FULL = "disk_full"
    """The disk has no room for the write."""
    IO_ERROR = "io_error"
    """The disk failed the operation."""
    NOT_ENOUGH_SHARDS = "not_enough_shards"
    """Too few OSDs took or returned the shards of a chunk."""
    FENCED = "fenced"
    """The write's container generation is stale: a newer instance runs elsewhere."""
    NOT_LEASING = "not_leasing"
    """The monitor cannot grant a lease now; ask the leader."""
    INTERNAL = "internal"
    """A bug in the receiver; its log says more."""


RETRYABLE = frozenset(
    {
        ErrorCode.UNREACHABLE,
        ErrorCode.TIMED_OUT,
        ErrorCode.NO_QUORUM,
        ErrorCode.NO_LEADER,
        ErrorCode.LEADERSHIP_CHANGED,
        ErrorCode.BUSY,
        ErrorCode.NOT_LEASING,
    }
)

_CODES: tuple[tuple[type[RackError], ErrorCode], ...] = (
    (WireError, ErrorCode.MALFORMED),
    (UnexpectedMessage, ErrorCode.UNEXPECTED),
    (NotAllowed, ErrorCode.NOT_ALLOWED),
    (BadRequest, ErrorCode.BAD_REQUEST),
    (Unreachable, ErrorCode.UNREACHABLE),
    (RpcTimeout, ErrorCode.TIMED_OUT),
    (NoQuorum, ErrorCode.NO_QUORUM),
    (NoLeader, ErrorCode.NO_LEADER),
    (LeadershipChanged, ErrorCode.LEADERSHIP_CHANGED),
    (Busy, ErrorCode.BUSY),
    (NotFound, ErrorCode.NOT_FOUND),
    (DataCorrupt, ErrorCode.CORRUPT),
    (OutOfSpace, ErrorCode.DISK_FULL),
    (StorageFault, ErrorCode.IO_ERROR),
    (NotEnoughShards, ErrorCode.NOT_ENOUGH_SHARDS),
    (Fenced, ErrorCode.FENCED),
    (NotLeasing, ErrorCode.NOT_LEASING),
)


class ErrorReply(Msg, frozen=True, kw_only=True, tag="error"):
    """A typed refusal: ``code`` is an :class:`ErrorCode` value, ``message`` is for people."""

    rid: int
    code: str
    message: str
    retryable: bool = False


def code_of(exc: RackError) -> ErrorCode:
    """The code of an exception; a remote error keeps the code its sender gave it."""
    if isinstance(exc, RemoteError):
        try:
            return ErrorCode(exc.code)
        except ValueError:
            return ErrorCode.INTERNAL
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return ErrorCode.INTERNAL


def error_reply(rid: int, exc: RackError) -> ErrorReply:
    code = code_of(exc)
    return ErrorReply(rid=rid, code=code, message=str(exc), retryable=code in RETRYABLE)


def remote_error(reply: ErrorReply) -> RemoteError:
    """The exception a caller raises for an error reply (its code and words kept)."""
    return RemoteError(reply.code, reply.message, reply.retryable)
