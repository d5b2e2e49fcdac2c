"""Messages of leases and containers: a compute node renews its lease with every
monitor, the leader asks monitors to release a down node's leases, and the operator reads
a container's log from the node that runs it."""

from __future__ import annotations

from agent.wire.base import Msg


class LeaseRenew(Msg, frozen=True, kw_only=True, tag="lease_renew"):
    """A compute node asks a monitor to extend its lease (it counts from its send)."""

    rid: int
    node: str
    incarnation: int


class LeaseGrant(Msg, frozen=True, kw_only=True, tag="lease_grant"):
    """One monitor's grant; ``epoch`` is that monitor's map then. The node acts on no older
    map, so a healed node first learns that its containers moved."""

    rid: int
    ttl: float
    epoch: int


class LeaseRelease(Msg, frozen=True, kw_only=True, tag="lease_release"):
    """The leader asks a monitor to say when its leases of a down node are over: the
    monitor answers once it has map ``epoch`` (where the node is down) and its last grant
    to the node has surely expired."""

    rid: int
    node: str
    epoch: int


class LeaseReleased(Msg, frozen=True, kw_only=True, tag="lease_released"):
    rid: int
    released: bool
    """False when the node is up again in the monitor's map (nothing to move)."""


class LogRequest(Msg, frozen=True, kw_only=True, tag="log_request"):
    rid: int
    container: str
    max_bytes: int = 64 * 1024


class LogReply(Msg, frozen=True, kw_only=True, tag="log_reply"):
    """The tail of the container's log; payload: the bytes."""

    rid: int
    found: bool
