"""Messages of leases and containers: a compute node renews its lease with the leader,
and the operator reads a container's log from the node that runs it."""

from __future__ import annotations

from agent.wire.base import Msg


class LeaseRenew(Msg, frozen=True, kw_only=True, tag="lease_renew"):
    """A compute node asks the leader to extend its lease (it counts from its send)."""

    rid: int
    node: str
    incarnation: int


class LeaseGrant(Msg, frozen=True, kw_only=True, tag="lease_grant"):
    """Granted after a majority confirmed the leader still leads; ``epoch`` is the leader's
    map then, and the node acts on no older map (a healed node must first learn that its
    containers moved)."""

    rid: int
    ttl: float
    epoch: int


class LogRequest(Msg, frozen=True, kw_only=True, tag="log_request"):
    rid: int
    container: str
    max_bytes: int = 64 * 1024


class LogReply(Msg, frozen=True, kw_only=True, tag="log_reply"):
    """The tail of the container's log; payload: the bytes."""

    rid: int
    found: bool
