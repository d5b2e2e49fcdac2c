"""The scheduler places, moves only after the lease, and says why when it cannot."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.clustermap import (
    AddNode,
    AssignContainer,
    ClusterMap,
    Command,
    ContainerSpec,
    MarkPending,
    NodeChange,
    PutContainer,
    SetContainerWant,
    SetNodeStates,
    apply,
)
from agent.core.scheduler import plan
from agent.record import NodeRecord

GIB = 1024**3


def run(cmap: ClusterMap, cmds: Iterable[Command]) -> ClusterMap:
    for cmd in cmds:
        result = apply(cmap, cmd)
        assert result.ok, result.refused
        cmap = result.cmap
    return cmap


def rack(memory: dict[str, int]) -> ClusterMap:
    nodes = [
        AddNode(
            node=NodeRecord(
                name=name,
                address=f"10.9.0.{i + 1}",
                public_key=name * 20,
                roles=("compute",),
                cpus=2,
                memory_bytes=mem,
            )
        )
        for i, (name, mem) in enumerate(memory.items())
    ]
    return run(ClusterMap(cluster="c"), nodes)


def container(name: str, memory: int = 0, label: str | None = None, n: int = 100) -> PutContainer:
    return PutContainer(
        spec=ContainerSpec(
            name=name,
            command=("x",),
            address=f"10.9.1.{n}",
            memory_bytes=memory,
            anti_affinity=label,
        )
    )


def settle(cmap: ClusterMap, lease_over: bool = True) -> ClusterMap:
    return run(cmap, plan(cmap, lambda _node: lease_over))


def down(cmap: ClusterMap, *names: str) -> ClusterMap:
    changes = tuple(NodeChange(name=n, state="down") for n in names)
    return run(cmap, [SetNodeStates(changes=changes, at=0.0)])


def test_new_containers_go_where_most_memory_is_free() -> None:
    cmap = rack({"n1": 4 * GIB, "n2": 8 * GIB})
    cmap = run(cmap, [container("a", GIB, n=1), container("b", GIB, n=2)])
    cmap = settle(cmap)
    assert cmap.containers["a"].node == "n2"  # 8 GiB free
    assert cmap.containers["b"].node == "n2"  # still 7 GiB free against 4
    assert all(c.generation == 1 and c.pending is None for c in cmap.containers.values())


def test_anti_affinity_spreads_and_explains_when_it_cannot() -> None:
    cmap = rack({"n1": GIB, "n2": GIB})
    cmap = run(cmap, [container(f"r{i}", label="db", n=i) for i in range(3)])
    cmap = settle(cmap)
    nodes = {cmap.containers[f"r{i}"].node for i in range(2)}
    assert nodes == {"n1", "n2"}
    assert cmap.containers["r2"].pending == (
        "every up compute node already runs a container labelled 'db' (2 up)"
    )


def test_a_container_too_big_for_what_is_free_waits_with_the_reason() -> None:
    cmap = rack({"n1": 2 * GIB})
    cmap = settle(run(cmap, [container("a", GIB + GIB // 2, n=1), container("b", GIB, n=2)]))
    assert cmap.containers["a"].node == "n1"
    assert cmap.containers["b"].pending == (
        "no up compute node has 1024 MiB of memory free (the most is 512 MiB, on n1)"
    )
    assert plan(cmap, lambda _n: True) == []  # same reason: nothing more to commit
    cmap = settle(run(cmap, [SetContainerWant(name="a", want="stopped")]))
    assert cmap.containers["b"].node == "n1" and cmap.containers["b"].pending is None


def test_a_dead_nodes_container_moves_only_after_its_lease_and_gets_a_new_generation() -> None:
    cmap = settle(run(rack({"n1": 4 * GIB, "n2": 2 * GIB}), [container("a", n=1)]))
    assert cmap.containers["a"].node == "n1"
    cmap = down(cmap, "n1")
    assert plan(cmap, lambda node: node != "n1") == []  # n1's lease may be live
    moves = plan(cmap, lambda _node: True)
    assert moves == [AssignContainer(name="a", node="n2", generation=1)]
    cmap = run(cmap, moves)
    assert (cmap.containers["a"].node, cmap.containers["a"].generation) == ("n2", 2)


def test_with_every_node_down_the_container_is_pending() -> None:
    cmap = settle(run(rack({"n1": GIB}), [container("a", n=1)]))
    cmap = down(cmap, "n1")
    assert plan(cmap, lambda _n: True) == [
        MarkPending(name="a", generation=1, reason="no compute node is up")
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=12),
    st.lists(st.integers(0, 4), max_size=3),
)
def test_placements_never_overcommit_memory_or_break_anti_affinity(
    sizes: list[tuple[int, int]], dead: list[int]
) -> None:
    cmap = rack({f"n{i}": 4 * GIB for i in range(5)})
    cmds = [
        container(f"c{i}", mem * GIB // 2, f"l{label}", n=i) for i, (mem, label) in enumerate(sizes)
    ]
    cmap = settle(run(cmap, cmds))
    cmap = settle(down(cmap, *sorted({f"n{d}" for d in dead})))
    used: dict[str, int] = {}
    labels: set[tuple[str, str]] = set()
    for info in cmap.containers.values():
        if info.pending is not None:
            continue
        assert info.node is not None and cmap.nodes[info.node].state == "up"
        used[info.node] = used.get(info.node, 0) + info.spec.memory_bytes
        key = (info.node, info.spec.anti_affinity or "")
        assert key not in labels
        labels.add(key)
    assert all(total <= 4 * GIB for total in used.values())
    assert msgspec.msgpack.encode(cmap)  # still a valid map
