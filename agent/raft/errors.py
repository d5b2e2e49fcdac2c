"""Typed errors of the Raft core; each ``str()`` is one plain sentence for the operator."""

from __future__ import annotations

from agent.errors import RackError

__all__ = [
    "ConfChangeRejected",
    "DriverBusy",
    "LeaderTransferring",
    "NotLeader",
    "QuorumLost",
    "RaftError",
    "StorageCorrupt",
    "TransferRejected",
]


class RaftError(RackError):
    """Base of the Raft errors."""


class NotLeader(RaftError):
    """Only the leader accepts writes; ``leader`` is who this node believes leads, if anyone."""

    def __init__(self, leader: int | None) -> None:
        self.leader = leader
        if leader is None:
            text = "this node is not the leader and does not know which node is"
        else:
            text = f"this node is not the leader; node {leader} is"
        super().__init__(text)


class QuorumLost(RaftError):
    """The leader has not heard from a majority recently, so a write might never commit."""

    def __init__(self, reachable: int, total: int) -> None:
        self.reachable = reachable
        self.total = total
        super().__init__(
            f"the leader reaches only {reachable} of {total} voters, fewer than a majority, "
            "so it refuses writes"
        )


class LeaderTransferring(RaftError):
    """Proposals pause while leadership is handed over, as the old leader is about to stop."""

    def __init__(self, target: int) -> None:
        self.target = target
        super().__init__(f"leadership is being handed to node {target}, so writes are paused")


class TransferRejected(RaftError):
    """A leader transfer cannot start."""


class ConfChangeRejected(RaftError):
    """A membership change cannot be proposed now (or at all)."""


class StorageCorrupt(RaftError):
    """A persisted file that must be intact (hard state, snapshot) fails its checksum."""


class DriverBusy(RaftError):
    """A proposal arrived while the driver's last Ready is still being persisted."""

    def __init__(self) -> None:
        super().__init__(
            "this node is still persisting its last batch of Raft work, so it cannot take "
            "a proposal until that is finished"
        )
