"""The "rack formed" predicate: one definition for the lab, ``rack status`` and the health gate.

A rack is formed, in one node's view, when every expected node is ``up``, there is a
monitor leader (if the rack has monitors), and the map lists every node with every
healthy disk it reports.
While it is not, the answer is the list of what is missing, in plain words.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.wire import ClusterStatus


def forming(view: ClusterStatus, expected: Iterable[str] | None = None) -> list[str]:
    """What keeps the rack from being formed in ``view``; empty when it is formed.

    ``expected`` are the nodes that should be up (default: every node the view lists
    that is not ``out``, i.e. still meant to serve).
    """
    viewer = view.answered_by or "the answering node"
    want = (
        sorted(n.name for n in view.nodes if n.state != "out")
        if expected is None
        else sorted(expected)
    )
    up = {n.name for n in view.nodes if n.state == "up"}
    missing = []
    absent = [n for n in want if n not in up]
    if absent:
        missing.append(f"{viewer} does not see {', '.join(absent)} up")
    if view.quorum is not None:
        if view.quorum.leader is None:
            missing.append(f"{viewer} knows no monitor leader")
        unmapped = [
            n.name
            for n in view.nodes
            if not n.in_map or len(n.osd_ids) < sum(1 for d in n.osds if d.ok and d.total_bytes)
        ]
        if unmapped:
            missing.append(f"{viewer}'s map lacks {', '.join(unmapped)} or their disks")
    return missing
