"""Shared strategies and checks for the placement tests (imported, not collected)."""

from __future__ import annotations

from hypothesis import strategies as st

from agent.placement import Osd, OsdState, Placement, PoolSpec, Tree
from agent.placement.tree import Level

TB = 10**12
WEIGHTS = (0, 1 * TB, 2 * TB, 4 * TB, 8 * TB, 3_000_592_982_016)


@st.composite
def trees(draw: st.DrawFn, *, max_hosts: int = 12, states: bool = True, min_hosts: int = 1) -> Tree:
    """Racks of hosts of OSDs with mixed weights (some 0) and, optionally, states."""
    n_racks = draw(st.integers(1, 4))
    osds: list[Osd] = []
    for h in range(draw(st.integers(min_hosts, max_hosts))):
        rack = f"rack{draw(st.integers(0, n_racks - 1))}"
        for _ in range(draw(st.integers(1, 4))):
            weight = draw(st.sampled_from(WEIGHTS))
            state = draw(st.sampled_from(list(OsdState))) if states else OsdState.UP
            osds.append(Osd(len(osds) * 3 + 1, f"host{h}", rack, weight, state))
    return Tree.of(osds)


@st.composite
def pools(draw: st.DrawFn, *, max_size: int = 7) -> PoolSpec:
    k = draw(st.integers(1, max_size - 1))
    m = draw(st.integers(0, max_size - k))
    level: Level = draw(st.sampled_from(["host", "host", "osd", "rack"]))
    return PoolSpec(draw(st.integers(0, 1000)), k, m, draw(st.integers(1, 48)), level)


def usable_domains(tree: Tree, level: Level) -> int:
    return sum(1 for d in tree.domains(level) if d.usable)


def assert_valid(tree: Tree, placement: Placement) -> None:
    """Every PG has k+m usable OSDs in k+m distinct failure domains."""
    by_id = {o.id: o for o in tree.osds}
    level = placement.pool.domain
    for pg in range(placement.pool.pg_count):
        row = placement[pg]
        assert len(row) == placement.pool.size
        assert all(by_id[o].usable for o in row), (pg, row)
        domains = [by_id[o].domain(level) for o in row]
        assert len(set(domains)) == len(domains), (pg, row, domains)
