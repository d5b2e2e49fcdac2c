from __future__ import annotations

from agent.clustermap import ClusterMap, ContainerInfo, ContainerSpec
from agent.core.fencing import FenceBook
from agent.wire import Fence


def with_generation(gen: int) -> ClusterMap:
    info = ContainerInfo(spec=ContainerSpec(name="web", command=("x",)), node="n1", generation=gen)
    return ClusterMap(cluster="c", containers={"web": info})


def test_older_than_the_map_is_refused_and_unfenced_writes_pass() -> None:
    book = FenceBook()
    assert book.check(None, with_generation(5)) is None
    why = book.check(Fence("web", 4), with_generation(5))
    assert why == (
        "container 'web' writes as generation 4, but the map holds generation 5: "
        "a newer instance runs, so the write is refused"
    )
    assert book.check(Fence("web", 5), with_generation(5)) is None


def test_older_than_seen_is_refused_even_with_a_stale_map() -> None:
    book = FenceBook()
    assert book.check(Fence("web", 7), with_generation(5)) is None  # the map lags
    why = book.check(Fence("web", 6), with_generation(5))
    assert why is not None and "this OSD has seen generation 7" in why
    assert book.check(Fence("other", 1), None) is None
