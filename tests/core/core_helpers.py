"""Builders for the pure-core tests: heartbeats, records, maps, an allowlist."""

from __future__ import annotations

from agent.clustermap import AddNode, AddOsd, ClusterMap, apply
from agent.enrolment import Allowlist, Enrolled
from agent.record import NodeRecord
from agent.wire import DiskSummary, Heartbeat

NAMES = ["n1", "n2", "n3", "n4", "n5"]


def key(name: str) -> str:
    return (name * 40)[:40]


ALLOWLIST = Allowlist(
    cluster="c",
    keys=(
        *(Enrolled(name=n, kind="node", public=key(n)) for n in NAMES),
        Enrolled(name="admin", kind="client", public=key("admin")),
    ),
)


def record(name: str, roles: tuple[str, ...] = ("osd",)) -> NodeRecord:
    return NodeRecord(name=name, address=f"10.0.0.{name[1:]}", public_key=key(name), roles=roles)


def beat(name: str, *, seq: int = 1, disks: int = 1, public_key: str | None = None) -> Heartbeat:
    rec = record(name)
    if public_key is not None:
        rec = NodeRecord(name=name, address=rec.address, public_key=public_key)
    return Heartbeat(
        cluster="c",
        node=rec,
        incarnation=7,
        seq=seq,
        disks=tuple(
            DiskSummary(path=f"/d{i}", total_bytes=100, free_bytes=50) for i in range(disks)
        ),
    )


def mapped(names: list[str], disks: int = 1) -> ClusterMap:
    cmap = ClusterMap(cluster="c")
    for n in names:
        cmap = apply(cmap, AddNode(node=record(n))).cmap
        for i in range(disks):
            cmap = apply(cmap, AddOsd(node=n, path=f"/d{i}", weight=100)).cmap
    return cmap
