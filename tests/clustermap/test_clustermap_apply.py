from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.clustermap import (
    AddNode,
    AddOsd,
    AssignContainer,
    ClusterMap,
    Command,
    ContainerSpec,
    CreatePool,
    DeletePool,
    NodeChange,
    PutContainer,
    RemoveContainer,
    RemoveNode,
    SetNodeStates,
    SetOsdState,
    apply,
    decode_command,
    decode_map,
    encode_command,
    encode_map,
)
from agent.record import NodeRecord


def node(
    name: str, key: str = "k" * 40, address: str = "10.0.0.1", incarnation: int = 0, **kw: object
) -> AddNode:
    record = NodeRecord(
        name=name,
        address=address,
        rpc_port=7100,
        pub_port=7101,
        public_key=key,
        roles=("mon", "osd", "compute"),
    )
    return AddNode(node=record, incarnation=incarnation, **kw)  # type: ignore[arg-type]


def run(*cmds: Command, cmap: ClusterMap | None = None) -> ClusterMap:
    cmap = cmap or ClusterMap(cluster="c")
    for cmd in cmds:
        result = apply(cmap, cmd)
        assert result.ok, result.refused
        cmap = result.cmap
    return cmap


def test_every_change_bumps_the_epoch_and_no_op_does_not() -> None:
    cmap = run(node("n1"), node("n2"))
    assert cmap.epoch == 2 and set(cmap.nodes) == {"n1", "n2"}
    again = apply(cmap, node("n1"))
    assert again.ok and again.cmap is cmap  # same node, same data: nothing to agree on
    moved = apply(cmap, node("n1", address="10.0.0.9", incarnation=5))
    assert moved.cmap.epoch == 3 and moved.cmap.nodes["n1"].address == "10.0.0.9"


def test_a_node_cannot_change_its_key() -> None:
    cmap = run(node("n1"))
    result = apply(cmap, node("n1", key="x" * 40))
    assert result.refused and "another key" in result.refused
    assert result.cmap is cmap


def test_down_records_leader_time_and_cascades_to_osds() -> None:
    cmap = run(node("n1"), node("n2"), AddOsd(node="n1", path="/d0", weight=10))
    cmap = run(SetNodeStates(changes=(NodeChange(name="n1", state="down"),), at=100.0), cmap=cmap)
    assert cmap.nodes["n1"].state == "down" and cmap.nodes["n1"].down_since == 100.0
    assert cmap.osds[0].state == "down"
    # a repeated down keeps the first time, so 'out after grace' counts from the first
    cmap2 = apply(cmap, SetNodeStates(changes=(NodeChange(name="n1", state="down"),), at=200.0))
    assert cmap2.cmap is cmap
    cmap = run(SetNodeStates(changes=(NodeChange(name="n1", state="out"),), at=400.0), cmap=cmap)
    assert cmap.osds[0].state == "out"
    cmap = run(
        SetNodeStates(changes=(NodeChange(name="n1", state="up", incarnation=9),), at=500.0),
        cmap=cmap,
    )
    assert cmap.nodes["n1"].incarnation == 9 and cmap.nodes["n1"].down_since is None
    assert cmap.osds[0].state == "up"


def test_only_a_down_node_goes_out() -> None:
    cmap = run(node("n1"))
    result = apply(cmap, SetNodeStates(changes=(NodeChange(name="n1", state="out"),), at=1.0))
    assert result.refused and "only a down node" in result.refused


def six_hosts() -> ClusterMap:
    names = [f"h{i}" for i in range(6)]
    return run(
        *(node(n, key=n * 20) for n in names),
        *(AddOsd(node=n, path="/d0", weight=10) for n in names),
    )


def test_pools_are_validated() -> None:
    cmap = run(CreatePool(name="data", k=4, m=2), cmap=six_hosts())
    assert cmap.pools["data"].id == 1 and cmap.pools["data"].plugin == "rs"
    for bad, why in [
        (CreatePool(name="data", k=4, m=2), "already exists"),
        (CreatePool(name="x", k=1, m=2), "k >= 2"),
        (CreatePool(name="x", k=200, m=60), "k + m <= 255"),
        (CreatePool(name="Bad Name", k=2, m=1), "not valid"),
        (CreatePool(name="x", k=2, m=1, pg_num=0), "pg_num"),
        (DeletePool(name="nope"), "no pool"),
        (CreatePool(name="x", k=5, m=2), "a 5+2 pool needs 7 hosts, only 6 are up"),
        (CreatePool(name="x", k=2, m=1, failure_domain="rack"), "needs 3 racks, only 1 is up"),
    ]:
        result = apply(cmap, bad)
        assert result.refused and why in result.refused, (bad, result.refused)
        assert result.cmap is cmap
    # an osd-level pool counts disks, and out disks do not count
    cmap = run(SetOsdState(id=0, state="out"), cmap=cmap)
    refused = apply(cmap, CreatePool(name="y", k=4, m=2, failure_domain="osd")).refused
    assert refused and refused.startswith("a 4+2 pool needs 6 OSDs, only 5 are up")


def test_container_generation_is_a_compare_and_set_fencing_token() -> None:
    spec = ContainerSpec(name="stream", command=("rack-demo-stream",), address="10.9.0.5")
    cmap = run(node("n1"), node("n2"), PutContainer(spec=spec))
    assert cmap.containers["stream"].generation == 0
    cmap = run(AssignContainer(name="stream", node="n1", generation=0), cmap=cmap)
    assert (cmap.containers["stream"].node, cmap.containers["stream"].generation) == ("n1", 1)
    stale = apply(cmap, AssignContainer(name="stream", node="n2", generation=0))
    assert stale.refused and "generation 1" in stale.refused
    cmap = run(SetNodeStates(changes=(NodeChange(name="n2", state="down"),), at=1.0), cmap=cmap)
    onto_down = apply(cmap, AssignContainer(name="stream", node="n2", generation=1))
    assert onto_down.refused and "not an up compute node" in onto_down.refused
    assert apply(cmap, RemoveNode(name="n1")).refused  # still hosts a container
    cmap = run(RemoveContainer(name="stream"), RemoveNode(name="n1"), cmap=cmap)
    assert "n1" not in cmap.nodes


def test_osd_ids_are_dense_and_deterministic() -> None:
    cmap = run(
        node("n1"),
        node("n2"),
        AddOsd(node="n1", path="/d0", weight=10),
        AddOsd(node="n2", path="/d0", weight=20),
        AddOsd(node="n1", path="/d0", weight=10),  # the same osd again: no-op
    )
    assert sorted(cmap.osds) == [0, 1]
    assert apply(cmap, AddOsd(node="n9", path="/d", weight=1)).refused
    cmap = run(SetOsdState(id=1, state="out"), cmap=cmap)
    assert cmap.osds[1].state == "out"


# ---- properties ----------------------------------------------------------------------

names = st.sampled_from(["n1", "n2", "n3", "n4"])
commands = st.one_of(
    st.builds(node, names),
    st.builds(
        SetNodeStates,
        changes=st.lists(
            st.builds(NodeChange, name=names, state=st.sampled_from(["up", "down", "out"])),
            min_size=1,
            max_size=3,
        ).map(tuple),
        at=st.floats(0, 1e6),
    ),
    st.builds(RemoveNode, name=names),
    st.builds(AddOsd, node=names, path=st.sampled_from(["/a", "/b"]), weight=st.integers(-1, 100)),
    st.builds(SetOsdState, id=st.integers(0, 5), state=st.sampled_from(["up", "down", "out"])),
    st.builds(
        CreatePool, name=st.sampled_from(["p", "q"]), k=st.integers(1, 8), m=st.integers(0, 4)
    ),
    st.builds(DeletePool, name=st.sampled_from(["p", "q"])),
    st.builds(
        PutContainer,
        spec=st.builds(
            ContainerSpec,
            name=st.sampled_from(["a", "b"]),
            command=st.just(("x",)),
            address=st.sampled_from(["10.9.0.5", "10.9.0.6"]),
        ),
    ),
    st.builds(
        AssignContainer,
        name=st.sampled_from(["a", "b"]),
        node=st.one_of(st.none(), names),
        generation=st.integers(0, 3),
    ),
    st.builds(RemoveContainer, name=st.sampled_from(["a", "b"])),
)


@settings(max_examples=200)
@given(st.lists(commands, max_size=40))
def test_replicas_that_apply_the_same_log_hold_the_same_map(log: list[Command]) -> None:
    a = b = ClusterMap(cluster="c")
    for cmd in log:
        before = a
        ra = apply(a, cmd)
        # the second replica gets the command through the wire encoding, as Raft ships it
        rb = apply(b, decode_command(encode_command(cmd)))
        a, b = ra.cmap, rb.cmap
        assert a == b and ra.refused == rb.refused
        if ra.refused is not None or a == before:
            assert a.epoch == before.epoch
        else:
            assert a.epoch == before.epoch + 1
        # invariants of any reachable map
        assert all(o.node in a.nodes for o in a.osds.values())
        assert all(c.node is None or c.node in a.nodes for c in a.containers.values())
    assert decode_map(encode_map(a)) == a


def test_command_decoding_rejects_garbage() -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_command(b"\x81\xa2op\xa4nuke")
