"""Which nodes and disks the map still lacks: the leader's membership decision, pure.

The shell says what it hears (every enrolled node's address, roles and disks, as
``AddNode``/``AddOsd`` it would like to see true); this returns only the commands that
would change the map. A node's incarnation is not membership: the vote records it when
the node comes back up, so a reboot alone does not re-add a node.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from agent.clustermap.commands import AddNode, AddOsd, Command, SetOsdState
from agent.clustermap.model import ClusterMap
from agent.placement import OsdState


def membership_changes(
    cmap: ClusterMap, heard_nodes: list[AddNode], heard_osds: list[AddOsd]
) -> list[Command]:
    changes: list[Command] = []
    for add in heard_nodes:
        old = cmap.nodes.get(add.node.name)
        if old is None:
            changes.append(add)
        elif old.as_record() != add.node:
            changes.append(msgspec.structs.replace(add, incarnation=old.incarnation))
    known = {(o.node, o.path) for o in cmap.osds.values()}
    changes += [
        osd for osd in heard_osds if osd.node in cmap.nodes and (osd.node, osd.path) not in known
    ]
    return changes


def osd_state_changes(cmap: ClusterMap, disks: Mapping[tuple[str, str], bool]) -> list[Command]:
    """OSDs of up nodes whose disk the node reports refused (``False``) go down; ones it
    reports healthy again come back up. ``disks`` maps (node, path) to the node's word."""
    changes: list[Command] = []
    for osd in cmap.osds.values():
        node = cmap.nodes.get(osd.node)
        ok = disks.get((osd.node, osd.path))
        if node is None or node.state != "up" or ok is None:
            continue
        if not ok and osd.state == OsdState.UP:
            changes.append(SetOsdState(id=osd.id, state=OsdState.DOWN))
        elif ok and osd.state == OsdState.DOWN:
            changes.append(SetOsdState(id=osd.id, state=OsdState.UP))
    return changes
