"""Container specs are checked by the map itself, so every monitor refuses alike."""

from __future__ import annotations

from agent.clustermap import (
    AddNode,
    AddOsd,
    AssignContainer,
    ClusterMap,
    Command,
    ContainerSpec,
    CreatePool,
    MarkPending,
    PutContainer,
    RemoveContainer,
    SetContainerWant,
    SetServiceNet,
    apply,
)
from agent.record import NodeRecord

GIB = 1024**3


def node(name: str, address: str, memory: int = 4 * GIB, cpus: int = 2) -> AddNode:
    record = NodeRecord(
        name=name,
        address=address,
        public_key=name * 20,
        roles=("mon", "osd", "compute"),
        cpus=cpus,
        memory_bytes=memory,
    )
    return AddNode(node=record)


def rack() -> ClusterMap:
    cmap = ClusterMap(cluster="c")
    cmds: list[Command] = [node(f"n{i}", f"10.9.0.{i}") for i in range(1, 4)]
    cmds += [AddOsd(node=f"n{i}", path="/d", weight=GIB) for i in range(1, 4)]
    cmds += [SetServiceNet(cidr="10.9.0.0/29"), CreatePool(name="vol", k=2, m=1)]
    for cmd in cmds:
        result = apply(cmap, cmd)
        assert result.ok, result.refused
        cmap = result.cmap
    return cmap


def put(cmap: ClusterMap, **spec: object) -> tuple[ClusterMap, str | None]:
    fields: dict[str, object] = {"name": "web", "command": ("sleep", "1")} | spec
    result = apply(cmap, PutContainer(spec=ContainerSpec(**fields)))  # type: ignore[arg-type]
    return result.cmap, result.refused


def test_an_address_comes_from_the_pool_and_skips_what_nodes_and_containers_use() -> None:
    cmap, why = put(rack())
    assert why is None
    assert cmap.containers["web"].spec.address == "10.9.0.4"  # .1-.3 are the nodes
    assert cmap.containers["web"].node is None and cmap.containers["web"].pending is None
    cmap, why = put(cmap, name="db")
    assert why is None and cmap.containers["db"].spec.address == "10.9.0.5"
    cmap, _ = put(cmap, name="c3")
    cmap, why = put(cmap, name="c4")
    assert why == "every service address of 10.9.0.0/29 is taken"


def test_bad_specs_are_refused_with_a_sentence_and_change_nothing() -> None:
    base = rack()
    cases = {
        "volume 'nope/x' names pool 'nope', which does not exist (pools: vol)": {
            "volume": "nope/x"
        },
        "address 10.9.0.1 is already in use": {"address": "10.9.0.1"},
        "address 10.8.0.1 is outside the rack's service addresses 10.9.0.0/29": {
            "address": "10.8.0.1"
        },
        "container 'web' asks for 8192 MiB of memory; no compute node has that much "
        "(the largest has 4096 MiB)": {"memory_bytes": 8 * GIB},
        "container 'web' asks for 3 CPUs; no compute node has that many (the largest has 2)": {
            "cpu_millis": 3000
        },
        "container name 'Web!' must be 1-32 characters of a-z, 0-9 and '-', "
        "starting and ending with a letter or digit": {"name": "Web!"},
    }
    for expected, spec in cases.items():
        cmap, why = put(base, **spec)
        assert cmap is base
        assert why is not None and why.startswith(expected.split(" must ")[0]), (why, expected)
    taken, _ = put(base)
    again, why = put(taken)
    assert why == "container 'web' already exists" and again is taken


def test_assignment_is_compare_and_set_and_clears_pending() -> None:
    cmap, _ = put(rack(), volume="vol/web/")
    cmap = apply(cmap, MarkPending(name="web", generation=0, reason="no node has room")).cmap
    assert cmap.containers["web"].pending == "no node has room"
    same = apply(cmap, MarkPending(name="web", generation=0, reason="no node has room"))
    assert same.ok and same.cmap is cmap  # no new epoch for the same reason
    moved = apply(cmap, AssignContainer(name="web", node="n2", generation=0)).cmap
    info = moved.containers["web"]
    assert (info.node, info.generation, info.pending) == ("n2", 1, None)
    stale = apply(moved, MarkPending(name="web", generation=0, reason="late"))
    assert stale.refused == "container 'web' is at generation 1, not 0"


def test_stop_and_start_keep_the_assignment() -> None:
    cmap, _ = put(rack())
    cmap = apply(cmap, AssignContainer(name="web", node="n1", generation=0)).cmap
    stopped = apply(cmap, SetContainerWant(name="web", want="stopped")).cmap
    info = stopped.containers["web"]
    assert (info.want, info.node, info.generation) == ("stopped", "n1", 1)
    assert stopped.epoch == cmap.epoch + 1
    assert apply(stopped, SetContainerWant(name="web", want="stopped")).cmap is stopped


def test_a_container_created_again_under_a_removed_name_starts_above_its_generations() -> None:
    cmap, _ = put(rack())
    for gen in range(3):
        cmap = apply(cmap, AssignContainer(name="web", node="n1", generation=gen)).cmap
    cmap = apply(cmap, RemoveContainer(name="web")).cmap
    assert cmap.retired == {"web": 3}
    again, why = put(cmap)
    assert why is None and again.containers["web"].generation == 3
    placed = apply(again, AssignContainer(name="web", node="n2", generation=3)).cmap
    assert placed.containers["web"].generation == 4
