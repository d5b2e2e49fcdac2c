from __future__ import annotations

from agent.clustermap import ClusterMap
from agent.core.mapaccept import RefuseMap, Stale, Take, judge_map


def judge(epoch: int, *, have: int = 5, cluster: str = "c", monitor: bool = True) -> object:
    return judge_map(
        ClusterMap(cluster=cluster, epoch=epoch),
        cluster="c",
        have_epoch=have,
        source="n9",
        from_monitor=monitor,
    )


def test_a_newer_map_from_a_monitor_is_taken() -> None:
    assert judge(6) == Take()


def test_an_older_or_equal_map_is_stale() -> None:
    assert judge(5) == Stale() and judge(1) == Stale()


def test_a_map_from_a_node_that_is_no_monitor_is_refused_however_new() -> None:
    verdict = judge(10**9, monitor=False)
    assert verdict == RefuseMap("maps are taken only from monitors, and n9 is not one")


def test_a_map_of_another_cluster_is_refused() -> None:
    verdict = judge(6, cluster="other")
    assert isinstance(verdict, RefuseMap) and "cluster other, not c" in verdict.reason
