"""Which nodes and disks the map still lacks: the leader's membership decision, pure.

The shell says what it hears (every enrolled node's address, roles and disks, as
``AddNode``/``AddOsd`` it would like to see true); this returns only the commands that
would change the map. A node's incarnation is not membership: the vote records it when
the node comes back up, so a reboot alone does not re-add a node.
"""

from __future__ import annotations

import msgspec

from agent.clustermap.commands import AddNode, AddOsd, Command
from agent.clustermap.model import ClusterMap


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
