"""Messages of the monitors: Raft traffic between them and map changes sent to any node."""

from __future__ import annotations

from agent.wire.base import Msg


class RaftPacket(Msg, frozen=True, kw_only=True, tag="raft"):
    """One Raft message between monitors (fire and forget); payload: the encoded message.

    Only monitors may send it, and the Raft message's ``src`` must be the sender's own id.
    """


class ProposeRequest(Msg, frozen=True, kw_only=True, tag="propose"):
    """Change the map; payload: one encoded cluster-map command. Any node forwards it."""

    rid: int
    deadline_ms: int = 3000
    hops: int = 0


class ProposeReply(Msg, frozen=True, kw_only=True, tag="propose_reply"):
    rid: int
    epoch: int
    refused: str | None = None
    """Why the map refused the command (it was committed, but changed nothing)."""
