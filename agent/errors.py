"""The one base error of Rackcloud, and the errors several modules share.

Every error an operator can see derives from :class:`RackError`, so the CLI can print
one plain sentence for any of them and never a stack trace. Each subsystem defines its
own small named subclasses next to its code (``agent.ec.InsufficientShards``, ...); the
ones shared by several modules live here. :mod:`agent.wire.errors` maps them to the
error codes peers see, in one table.

Style of every sentence: it starts in lower case, has no final period, says what is
wrong in the operator's words and, where there is one, what to do about it.
"""

from __future__ import annotations


class RackError(Exception):
    """Base of every Rackcloud error; ``str(err)`` is one plain sentence for the operator."""


class ConfigError(RackError):
    """A configuration file or value is missing or invalid."""


class KeyringError(RackError):
    """A keyring is missing, unreadable, or has unsafe permissions."""


class WireError(RackError):
    """A frame or message from the network cannot be accepted."""


class LabError(RackError):
    """The lab rack cannot do what was asked."""


class BadRequest(RackError):
    """A well-formed message asks for something the receiver cannot act on."""


class NotAllowed(RackError):
    """The sender's key may not send this message (a client posing as a monitor, say)."""


class UnexpectedMessage(RackError):
    """A message type this node does not answer (a reply sent as a request, say)."""


class RpcError(RackError):
    """A remote call failed."""


class Unreachable(RpcError):
    """There is no connection to the peer now, so nothing was sent."""


class RpcTimeout(RpcError):
    """The request went out but no answer came before the deadline."""


class RemoteError(RpcError):
    """The peer answered with a typed error reply (``code`` is an ``ErrorCode`` value)."""

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class NoQuorum(RackError):
    """No majority of the monitors can be reached from here, so a write cannot commit."""


class NoLeader(RackError):
    """A majority of monitors is reachable but none leads yet (an election is running)."""


class LeadershipChanged(RackError):
    """The leader changed before a write committed; it was not applied and may be retried."""


class Busy(RackError):
    """The receiver cannot take this now (a leader transfer, say); retry shortly."""


class NotFound(RackError):
    """The object, shard or pool asked for does not exist."""


class DataCorrupt(RackError):
    """Stored bytes fail their checksum; they are reported and never returned."""


class OutOfSpace(RackError):
    """A disk has no room for the write (or only its reserve is left)."""


class StorageFault(RackError):
    """A disk failed an operation (an I/O error, a refused disk)."""


class NotEnoughShards(RackError):
    """Too few OSDs took or returned a chunk's shards for the operation to be safe."""


class Fenced(RackError):
    """A write carries an older generation of its container than the OSD has seen or the
    map holds: a newer instance runs elsewhere, so the stale one must stop."""


class NotLeasing(RackError):
    """The monitor cannot grant a lease now (it does not lead, or cannot prove it does)."""
