"""Who is enrolled in the cluster: the allowlist, as plain data (no files, no crypto).

The keyring module reads and writes it; the node's decisions (who may send what, which
heartbeats describe an enrolled node) read it without touching a file or a key.
"""

from __future__ import annotations

from typing import Literal

import msgspec

KeyKind = Literal["node", "client"]


class Enrolled(msgspec.Struct, frozen=True, kw_only=True):
    """One enrolled identity: its name, whether it is a node or a client, its public key."""

    name: str
    kind: KeyKind
    public: str


class Allowlist(msgspec.Struct, frozen=True, kw_only=True):
    """The cluster id and every public key that may talk to an agent."""

    cluster: str
    keys: tuple[Enrolled, ...] = ()

    def by_public(self, public: str) -> Enrolled | None:
        return next((e for e in self.keys if e.public == public), None)

    def by_name(self, name: str) -> Enrolled | None:
        return next((e for e in self.keys if e.name == name), None)

    def nodes(self) -> tuple[Enrolled, ...]:
        return tuple(e for e in self.keys if e.kind == "node")

    def node_key(self, name: str) -> str | None:
        """The enrolled public key of node ``name``; None for a client or a stranger."""
        entry = self.by_name(name)
        return entry.public if entry is not None and entry.kind == "node" else None
