from __future__ import annotations

import msgspec

from agent.clustermap import ContainerInfo, ContainerSpec, NodeChange, SetNodeStates, apply
from agent.core.failure import PeerState, PeerView
from agent.core.statusview import cluster_status, node_state
from agent.record import NodeRecord
from agent.wire import ContainerSummary
from tests.core.core_helpers import NAMES, beat, mapped, record


def test_the_map_decides_and_a_silent_up_node_shows_suspect() -> None:
    assert node_state(me=False, in_map="up", heard=PeerState.ALIVE) == "up"
    assert node_state(me=False, in_map="up", heard=PeerState.DEAD) == "suspect"
    assert node_state(me=False, in_map="up", heard=None) == "suspect"
    assert node_state(me=False, in_map="down", heard=PeerState.ALIVE) == "down"
    assert node_state(me=True, in_map="up", heard=None) == "up"  # we always hear ourselves


def test_before_the_map_lists_a_node_the_detector_speaks() -> None:
    assert node_state(me=False, in_map=None, heard=PeerState.SUSPECT) == "suspect"
    assert node_state(me=False, in_map=None, heard=PeerState.DEAD) == "down"
    assert node_state(me=False, in_map=None, heard=None) == "down"
    assert node_state(me=True, in_map=None, heard=None) == "up"


def status(**kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "me": beat("n1"),
        "now": 10.0,
        "views": [PeerView(n, PeerState.ALIVE, 7, 3, 0.1) for n in NAMES[1:]],
        "beats": {n: beat(n) for n in NAMES[1:]},
        "peers": {},
        "cmap": mapped(NAMES),
        "enrolled": NAMES,
        "monitors": ("n1", "n2", "n3"),
        "leader": "n2",
        "term": 4,
    }
    args.update(kw)
    return cluster_status(**args)  # type: ignore[arg-type]


def test_a_healthy_view_is_formed_and_lists_every_node() -> None:
    st = status()
    assert [n.name for n in st.nodes] == NAMES and st.formed and st.forming == ()
    assert st.quorum is not None and (st.quorum.leader, st.quorum.term) == ("n2", 4)
    assert st.answered_by == "n1" and st.epoch == 10  # 5 nodes and 5 disks were added
    me = st.nodes[0]
    assert (me.state, me.last_heartbeat_age_s, me.in_map) == ("up", 0.0, True)


def test_a_node_voted_down_shows_down_and_one_not_heard_shows_suspect() -> None:
    cmap = apply(
        mapped(NAMES), SetNodeStates(changes=(NodeChange(name="n3", state="down"),), at=0.0)
    ).cmap
    views = [PeerView(n, PeerState.ALIVE, 7, 3, 0.1) for n in ("n2", "n5")] + [
        PeerView("n3", PeerState.DEAD, 7, 3, 4.0),
        PeerView("n4", PeerState.DEAD, 7, 3, 1.5),
    ]
    st = status(cmap=cmap, views=views)
    states = {n.name: (n.state, n.last_heartbeat_age_s) for n in st.nodes}
    assert states["n3"] == ("down", 4.0) and states["n4"] == ("suspect", 1.5)
    assert not st.formed and st.forming == ("n1 does not see n3, n4 up",)


def test_an_enrolled_node_nobody_heard_is_listed_without_an_address() -> None:
    st = status(beats={}, views=[], cmap=None, leader=None, term=0)
    unknown = {n.name: n for n in st.nodes}["n4"]
    assert (unknown.state, unknown.address, unknown.rpc_port, unknown.in_map) == (
        "down",
        "",
        0,
        False,
    )


def test_a_discovered_peer_shows_its_address_before_any_heartbeat() -> None:
    peer = NodeRecord(name="n4", address="10.9.9.4", rpc_port=1, pub_port=2, public_key="k")
    st = status(beats={}, views=[], cmap=None, peers={"n4": peer})
    n4 = {n.name: n for n in st.nodes}["n4"]
    assert (n4.address, n4.rpc_port, n4.pub_port) == ("10.9.9.4", 1, 2)


def test_the_heartbeat_record_wins_over_the_map() -> None:
    moved = msgspec.structs.replace(
        beat("n2"), node=msgspec.structs.replace(record("n2"), address="10.7.7.7")
    )
    st = status(beats={**{n: beat(n) for n in NAMES[1:]}, "n2": moved})
    assert {n.name: n.address for n in st.nodes}["n2"] == "10.7.7.7"


def test_a_container_shows_what_its_node_reports_for_the_maps_generation() -> None:
    spec = ContainerSpec(name="web", command=("x",), address="10.0.9.1", volume="v/web/")
    base = mapped(NAMES)
    infos = {
        "web": ContainerInfo(spec=spec, node="n2", generation=3),
        "old": ContainerInfo(
            spec=msgspec.structs.replace(spec, name="old"), node="n3", generation=2
        ),
        "wait": ContainerInfo(
            spec=msgspec.structs.replace(spec, name="wait"),
            node=None,
            generation=0,
            pending="no compute node is up",
        ),
        "off": ContainerInfo(
            spec=msgspec.structs.replace(spec, name="off"), node="n2", generation=1, want="stopped"
        ),
    }
    cmap = msgspec.structs.replace(base, containers=infos)
    running = ContainerSummary(name="web", generation=3, state="running", restarts=2, uptime_s=9.0)
    stale = ContainerSummary(name="old", generation=1, state="running")  # the old generation
    beats = {n: beat(n) for n in NAMES[1:]}
    beats["n2"] = msgspec.structs.replace(beats["n2"], containers=(running,))
    beats["n3"] = msgspec.structs.replace(beats["n3"], containers=(stale,))
    st = status(cmap=cmap, beats=beats)
    got = {c.name: (c.state, c.node, c.generation, c.restarts) for c in st.containers}
    assert got == {
        "web": ("running", "n2", 3, 2),
        "old": ("starting", "n3", 2, 0),  # its node still reports generation 1 only
        "wait": ("pending", None, 0, 0),
        "off": ("stopped", "n2", 1, 0),
    }
    wait = next(c for c in st.containers if c.name == "wait")
    assert wait.reason == "no compute node is up" and wait.volume == "v/web/"
