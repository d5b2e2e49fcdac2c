"""The status view: how the map's states and this node's detector merge for the operator.

The map says what the vote decided (``up``, ``down``, ``out``); the detector says what
this node hears right now. A node the map calls up that this node no longer hears shows
``suspect``: the vote has not agreed yet. A node the map does not list yet (just
enrolled, or before the first leader) shows what the detector says of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec

from agent.clustermap import ClusterMap
from agent.core.failure import PeerState, PeerView
from agent.core.formed import forming
from agent.record import NodeRecord
from agent.wire import ClusterStatus, ContainerStatus, Heartbeat, NodeStatus, Quorum

_DETECTOR_STATE = {PeerState.ALIVE: "up", PeerState.SUSPECT: "suspect", PeerState.DEAD: "down"}


def node_state(*, me: bool, in_map: str | None, heard: PeerState | None) -> str:
    """The state shown for one node (``heard`` is None when the detector never saw it)."""
    if in_map is not None:
        if in_map == "up" and not me and heard is not PeerState.ALIVE:
            return "suspect"
        return in_map
    if me:
        return "up"
    return _DETECTOR_STATE[heard] if heard is not None else "down"


def cluster_status(
    *,
    me: Heartbeat,
    now: float,
    views: Iterable[PeerView],
    beats: Mapping[str, Heartbeat],
    peers: Mapping[str, NodeRecord],
    cmap: ClusterMap | None,
    enrolled: Iterable[str],
    monitors: Sequence[str],
    leader: str | None,
    term: int,
) -> ClusterStatus:
    """``rack status`` as this node (``me``) sees the rack at ``now``."""
    own = me.node.name
    by_name = {v.node: v for v in views}
    names = sorted({*enrolled, *(cmap.nodes if cmap else ()), own})
    nodes = []
    for name in names:
        view = None if name == own else by_name.get(name)
        hb = me if name == own else beats.get(name)
        info = cmap.nodes.get(name) if cmap else None
        record = (
            hb.node
            if hb
            else info.as_record()
            if info
            else peers.get(name, NodeRecord(name=name, address="", rpc_port=0, pub_port=0))
        )
        nodes.append(
            NodeStatus(
                **msgspec.structs.asdict(record),
                state=node_state(
                    me=name == own,
                    in_map=info.state if info else None,
                    heard=view.state if view else None,
                ),
                last_heartbeat_age_s=0.0
                if name == own
                else (round(view.silent_for, 3) if view else None),
                osds=hb.disks if hb else (),
                incarnation=hb.incarnation if hb else None,
                uptime_s=hb.uptime_s if hb else None,
                loop_lag_s=hb.loop_lag_s if hb else None,
                version=(hb.version or None) if hb else None,
                ec_kernel=(hb.ec_kernel or None) if hb else None,
                in_map=info is not None,
                osd_ids=tuple(sorted(o.id for o in cmap.osds.values() if o.node == name))
                if cmap
                else (),
            )
        )
    status = ClusterStatus(
        cluster=me.cluster,
        epoch=cmap.epoch if cmap else 0,
        quorum=Quorum(leader=leader, term=term, members=tuple(monitors)) if monitors else None,
        nodes=tuple(nodes),
        pools=tuple(msgspec.to_builtins(p) for p in cmap.pools.values()) if cmap else (),
        containers=_containers(cmap, {**beats, own: me}),
        answered_by=own,
    )
    missing = forming(status)
    return msgspec.structs.replace(status, formed=not missing, forming=tuple(missing))


def _containers(
    cmap: ClusterMap | None, beats: Mapping[str, Heartbeat]
) -> tuple[ContainerStatus, ...]:
    """Each container as the map places it and as its node last reported it."""
    if cmap is None:
        return ()
    out = []
    for name, c in sorted(cmap.containers.items()):
        hb = beats.get(c.node or "")
        reported = next(
            (r for r in (hb.containers if hb else ()) if r.name == name),
            None,
        )
        if c.want == "stopped":
            state = "stopped" if reported is None or reported.state != "running" else "stopping"
        elif c.pending is not None:
            state = "pending"
        elif reported is not None and reported.generation == c.generation:
            state = reported.state
        else:
            state = "starting"
        out.append(
            ContainerStatus(
                name=name,
                node=c.node,
                address=c.spec.address,
                generation=c.generation,
                state=state,
                want=c.want,
                reason=c.pending,
                restarts=reported.restarts if reported else 0,
                uptime_s=reported.uptime_s if reported else None,
                volume=c.spec.volume,
                command=c.spec.command,
            )
        )
    return tuple(out)
