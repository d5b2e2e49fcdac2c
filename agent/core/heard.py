"""What we heard: every enrolled node and its disks, as the map should list them.

The leader turns its own description and every peer's latest heartbeat into the
``AddNode``/``AddOsd`` commands it would like to see true (``membership_changes``
then keeps only those the map lacks). A heartbeat counts only if it describes a node
enrolled under that name with that very key, so nothing unenrolled enters the map.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.clustermap import AddNode, AddOsd
from agent.enrolment import Allowlist
from agent.wire import Heartbeat


def disk_health(beats: Iterable[Heartbeat], allowlist: Allowlist) -> dict[tuple[str, str], bool]:
    """What each enrolled node says of each of its disks: (node, path) -> serving."""
    return {
        (hb.node.name, d.path): d.ok
        for hb in beats
        if allowlist.node_key(hb.node.name) == hb.node.public_key
        for d in hb.disks
    }


def heard(beats: Iterable[Heartbeat], allowlist: Allowlist) -> tuple[list[AddNode], list[AddOsd]]:
    nodes: list[AddNode] = []
    osds: list[AddOsd] = []
    for hb in beats:
        record = hb.node
        if allowlist.node_key(record.name) != record.public_key:
            continue
        nodes.append(AddNode(node=record, incarnation=hb.incarnation))
        osds += [
            AddOsd(node=record.name, path=d.path, weight=d.total_bytes)
            for d in hb.disks
            if d.ok and d.total_bytes > 0
        ]
    return nodes, osds
