"""The named error of the container runtime."""

from __future__ import annotations

from agent.errors import RackError

__all__ = ["RuntimeFault"]


class RuntimeFault(RackError):
    """A container cannot be started or set up (command not found, cgroup refused, ...)."""
