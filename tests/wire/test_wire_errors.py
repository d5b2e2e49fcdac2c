from __future__ import annotations

import pytest

from agent.errors import (
    BadRequest,
    Busy,
    LeadershipChanged,
    NoLeader,
    NoQuorum,
    NotAllowed,
    RackError,
    RemoteError,
    RpcTimeout,
    UnexpectedMessage,
    Unreachable,
)
from agent.wire import ErrorCode, error_reply, remote_error
from agent.wire.errors import RETRYABLE, code_of
from agent.wire.frames import MalformedMessage


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (MalformedMessage("x"), ErrorCode.MALFORMED, False),
        (UnexpectedMessage("x"), ErrorCode.UNEXPECTED, False),
        (NotAllowed("x"), ErrorCode.NOT_ALLOWED, False),
        (BadRequest("x"), ErrorCode.BAD_REQUEST, False),
        (Unreachable("x"), ErrorCode.UNREACHABLE, True),
        (RpcTimeout("x"), ErrorCode.TIMED_OUT, True),
        (NoQuorum("x"), ErrorCode.NO_QUORUM, True),
        (NoLeader("x"), ErrorCode.NO_LEADER, True),
        (LeadershipChanged("x"), ErrorCode.LEADERSHIP_CHANGED, True),
        (Busy("x"), ErrorCode.BUSY, True),
        (RackError("x"), ErrorCode.INTERNAL, False),
    ],
)
def test_each_error_has_its_own_code(exc: RackError, code: ErrorCode, retryable: bool) -> None:
    reply = error_reply(7, exc)
    assert (reply.rid, reply.code, reply.message, reply.retryable) == (7, code, "x", retryable)


def test_unreachable_timed_out_no_quorum_and_leadership_changed_differ() -> None:
    kinds = [
        Unreachable("a"),
        RpcTimeout("b"),
        NoQuorum("c"),
        NoLeader("d"),
        LeadershipChanged("e"),
    ]
    assert len({code_of(e) for e in kinds}) == len(kinds)
    assert all(code_of(e) in RETRYABLE for e in kinds)


def test_a_remote_error_keeps_its_code_through_a_forwarding_node() -> None:
    relayed = remote_error(error_reply(1, NoQuorum("n2 reaches 1 of 3 monitors")))
    assert isinstance(relayed, RemoteError)
    again = error_reply(2, relayed)
    assert (again.code, again.message, again.retryable) == (
        ErrorCode.NO_QUORUM,
        "n2 reaches 1 of 3 monitors",
        True,
    )
    assert code_of(RemoteError("from-the-future", "?")) is ErrorCode.INTERNAL
