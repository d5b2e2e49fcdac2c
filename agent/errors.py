"""The one base error of Rackcloud.

Every error an operator can see derives from :class:`RackError`, so the CLI can print
one plain sentence for any of them and never a stack trace. Each subsystem defines its
own small named subclasses next to its code (``agent.config.ConfigError``,
``agent.ec.InsufficientShards``, ...); the ones shared by several modules live here.
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


class RpcError(RackError):
    """A remote call failed."""


class RpcTimeout(RpcError):
    """No answer before the deadline (the peer may be down or may not admit our key)."""


class RemoteError(RpcError):
    """The peer answered with a typed error reply."""

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class LabError(RackError):
    """The lab rack cannot do what was asked."""
