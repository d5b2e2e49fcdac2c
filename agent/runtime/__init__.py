"""The container runtime: a container is a supervised process tree, killed as a whole.

As root, each container runs in its own pid, mount, UTS and IPC namespaces (the network
namespace stays the node's) and in a cgroup with its memory and cpu limits, on pure
cgroup v2 or the hybrid layout; otherwise it is a plain process group. The supervisor
service uses :class:`Runtime` to start :class:`RunSpec` s and gets :class:`Instance` s to
wait for, stop or kill; an agent that restarts after a crash calls :func:`cleanup_scope`.
"""

from __future__ import annotations

from agent.runtime.cgroups import cleanup_scope
from agent.runtime.errors import RuntimeFault
from agent.runtime.process import Instance, RunSpec, Runtime

__all__ = ["Instance", "RunSpec", "Runtime", "RuntimeFault", "cleanup_scope"]
