"""Straw2 placement: failure domains, determinism, out vs down, upmaps, the error."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from placement_helpers import TB, assert_valid, pools, trees, usable_domains

from agent.placement import (
    Osd,
    OsdState,
    PlacementError,
    PoolSpec,
    Tree,
    Upmap,
    object_pg,
    place,
    place_pg,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _placeable(tree: Tree, pool: PoolSpec) -> bool:
    return usable_domains(tree, pool.domain) >= pool.size


def _grid(hosts: int, per_host: int, seed: int = 0) -> Tree:
    rng = random.Random(seed)
    return Tree.of(
        Osd(h * per_host + j, f"h{h:02d}", f"r{h % 3}", rng.choice([1, 2, 4, 8]) * TB)
        for h in range(hosts)
        for j in range(per_host)
    )


@SETTINGS
@given(trees(), pools())
def test_no_two_shards_share_a_domain(tree: Tree, pool: PoolSpec) -> None:
    if not _placeable(tree, pool):
        with pytest.raises(PlacementError, match=f"a {pool.k}\\+{pool.m} pool needs"):
            place(tree, pool)
        return
    placed = place(tree, pool)
    assert_valid(tree, placed)
    for pg in range(pool.pg_count):
        assert place_pg(tree, pool, pg) == placed[pg]


@SETTINGS
@given(trees(), pools(), st.randoms(use_true_random=False))
def test_same_input_same_output(tree: Tree, pool: PoolSpec, rnd: random.Random) -> None:
    assume(_placeable(tree, pool))
    shuffled = list(tree.osds)
    rnd.shuffle(shuffled)
    a = place(tree, pool)
    b = place(Tree.of(shuffled), pool)
    assert np.array_equal(a.osds, b.osds)
    assert np.array_equal(a.raw, b.raw)


def test_pools_and_positions_draw_independently() -> None:
    tree = _grid(12, 2)
    a = place(tree, PoolSpec(1, 2, 1, 256))
    b = place(tree, PoolSpec(2, 2, 1, 256))
    assert (a.osds != b.osds).mean() > 0.5


@SETTINGS
@given(trees(states=False), pools(), st.data())
def test_out_moves_only_the_shards_on_that_osd(
    tree: Tree, pool: PoolSpec, data: st.DataObject
) -> None:
    """From a map with nothing out, marking one OSD out changes only its slots."""
    assume(_placeable(tree, pool))
    victim = data.draw(st.sampled_from([o.id for o in tree.osds if o.usable]))
    after_tree = tree.with_state(victim, OsdState.OUT)
    assume(_placeable(after_tree, pool))
    before = place(tree, pool)
    after = place(after_tree, pool)
    changed = before.osds != after.osds
    assert not (changed & (before.osds != victim)).any()
    assert not (after.osds == victim).any()
    assert_valid(after_tree, after)


@SETTINGS
@given(trees(), pools(), st.data())
def test_out_leaves_pgs_without_other_out_shards_alone(
    tree: Tree, pool: PoolSpec, data: st.DataObject
) -> None:
    """With other OSDs already out, the guarantee holds in every PG that had none."""
    assume(_placeable(tree, pool))
    victim = data.draw(st.sampled_from([o.id for o in tree.osds if o.usable] or [-1]))
    assume(victim >= 0)
    after_tree = tree.with_state(victim, OsdState.OUT)
    assume(_placeable(after_tree, pool))
    before = place(tree, pool)
    after = place(after_tree, pool)
    usable = {o.id for o in tree.osds if o.usable}
    clean = np.array([all(o in usable for o in row) for row in before.raw.tolist()])
    changed = (before.osds != after.osds) & (before.osds != victim)
    assert not changed[clean].any()


@SETTINGS
@given(trees(), pools(), st.data())
def test_down_keeps_every_slot(tree: Tree, pool: PoolSpec, data: st.DataObject) -> None:
    """An up OSD going down (not out) keeps its slots: the data is degraded, not moved."""
    assume(_placeable(tree, pool))
    up = [o.id for o in tree.osds if o.state == OsdState.UP]
    assume(up)
    victim = data.draw(st.sampled_from(up))
    before = place(tree, pool)
    after = place(tree.with_state(victim, OsdState.DOWN), pool)
    assert np.array_equal(before.osds, after.osds)


def test_out_on_a_big_tree_moves_exactly_the_shards_on_it() -> None:
    tree = _grid(30, 4)
    pool = PoolSpec(3, 4, 2, 1024)
    before = place(tree, pool)
    victim = int(before.osds[0, 0])
    after = place(tree.with_state(victim, OsdState.OUT), pool)
    changed = before.osds != after.osds
    assert changed.sum() == (before.osds == victim).sum() > 0
    back = place(tree.with_state(victim, OsdState.UP), pool)
    assert np.array_equal(back.osds, before.osds)


@SETTINGS
@given(trees(states=False, min_hosts=2), pools(), st.integers(1, 4), st.data())
def test_adding_a_host_only_disturbs_pgs_it_joins(
    tree: Tree, pool: PoolSpec, n_osds: int, data: st.DataObject
) -> None:
    """Claims are settled strongest first, so a PG's placement can only change if the new
    host won one of its claims: every PG that changed has a shard on the new host."""
    assume(pool.domain == "host" and _placeable(tree, pool))
    first = max(o.id for o in tree.osds) + 1
    weights = data.draw(st.lists(st.sampled_from([1, 2, 4, 8]), min_size=n_osds, max_size=n_osds))
    new = [Osd(first + i, "zz-new", "rack0", w * TB) for i, w in enumerate(weights)]
    before = place(tree, pool)
    after = place(tree.with_osds(new), pool)
    new_ids = {o.id for o in new}
    for old_row, new_row in zip(before.osds.tolist(), after.osds.tolist(), strict=True):
        if old_row != new_row:
            assert new_ids & set(new_row)


def test_adding_a_host_moves_about_its_share() -> None:
    tree = _grid(30, 3)
    pool = PoolSpec(1, 4, 2, 2048)
    new = [Osd(1000 + i, "zz-new", "r0", 4 * TB) for i in range(3)]
    grown = tree.with_osds(new)
    before, after = place(tree, pool), place(grown, pool)
    fair = before.osds.size * 12 / sum(o.weight // TB for o in grown.osds)
    moved = int((before.osds != after.osds).sum())
    onto = int(np.isin(after.osds, [o.id for o in new]).sum())
    assert 0.85 * fair < onto <= moved < 1.1 * fair


def test_weight_decides_the_share() -> None:
    tree = Tree.of(
        Osd(h * 2 + j, f"h{h:02d}", "r", (8 if h % 2 else 1) * TB)
        for h in range(40)
        for j in range(2)
    )
    placed = place(tree, PoolSpec(1, 2, 0, 8192))
    counts = placed.shard_counts()
    heavy = sum(c for o, c in counts.items() if (o // 2) % 2)
    light = sum(c for o, c in counts.items() if not (o // 2) % 2)
    assert 7.0 < heavy / light < 8.5


def test_too_few_domains_says_why() -> None:
    tree = Tree.of(Osd(i, f"h{i}", "r", TB) for i in range(5))
    with pytest.raises(PlacementError) as err:
        place(tree, PoolSpec(1, 4, 2, 16))
    assert str(err.value).startswith("a 4+2 pool needs 6 hosts, only 5 are up")
    six = tree.with_osds([Osd(9, "h9", "r", TB, OsdState.OUT)])
    with pytest.raises(PlacementError, match="a 4\\+2 pool needs 6 hosts, only 5 are up"):
        place(six, PoolSpec(1, 4, 2, 16))
    down = tree.with_osds([Osd(9, "h9", "r", TB, OsdState.DOWN)])
    assert len(place(down, PoolSpec(1, 4, 2, 16))[0]) == 6
    with pytest.raises(PlacementError, match="a 2\\+1 pool needs 3 racks, only 1 is up"):
        place(tree, PoolSpec(1, 2, 1, 16, "rack"))
    with pytest.raises(PlacementError, match="a 5\\+1 pool needs 6 OSDs, only 5 are up"):
        place_pg(tree, PoolSpec(1, 5, 1, 16, "osd"), 0)


def test_single_host_lab_uses_osd_domains() -> None:
    tree = Tree.of(Osd(i, "lab", "r", TB) for i in range(6))
    placed = place(tree, PoolSpec(1, 2, 1, 64, "osd"))
    assert_valid(tree, placed)
    with pytest.raises(PlacementError, match="needs 3 hosts, only 1 is up"):
        place(tree, PoolSpec(1, 2, 1, 64))


def test_locate_uses_the_object_hash() -> None:
    tree = _grid(8, 2)
    pool = PoolSpec(4, 3, 2, 32)
    placed = place(tree, pool)
    assert placed.locate("bucket/key", 2) == placed[object_pg(4, 32, "bucket/key", 2)]
    with pytest.raises(ValueError, match="read-only"):
        placed.osds[0, 0] = 1


# Upmaps -----------------------------------------------------------------------------


def _other_domain_osd(tree: Tree, row: tuple[int, ...]) -> int:
    hosts = {tree.osd(o).host for o in row}
    return next(o.id for o in tree.osds if o.host not in hosts and o.usable)


def test_valid_upmap_is_applied() -> None:
    tree = _grid(10, 2)
    pool = PoolSpec(1, 3, 1, 16)
    raw = place(tree, pool)
    target = _other_domain_osd(tree, raw[5])
    placed = place(tree, pool, [Upmap(1, 5, 2, target)])
    assert placed[5][2] == target
    assert placed[5][:2] == raw[5][:2] and placed[5][3] == raw[5][3]
    assert np.array_equal(np.delete(placed.osds, 5, axis=0), np.delete(raw.osds, 5, axis=0))


def test_invalid_upmaps_are_ignored() -> None:
    tree = _grid(10, 2)
    pool = PoolSpec(1, 3, 1, 16)
    raw = place(tree, pool)
    row = raw[5]
    target = _other_domain_osd(tree, row)
    same_host_as_slot0 = next(
        o.id for o in tree.osds if o.host == tree.osd(row[0]).host and o.id != row[0]
    )
    out_tree = tree.with_state(target, OsdState.OUT)
    cases = [
        (tree, Upmap(1, 5, 2, 99_999)),  # unknown OSD
        (out_tree, Upmap(1, 5, 2, target)),  # target out
        (tree, Upmap(1, 5, 2, same_host_as_slot0)),  # clashes with position 0's host
        (tree, Upmap(1, 5, 9, target)),  # no such position
        (tree, Upmap(1, 99, 0, target)),  # no such PG
        (tree, Upmap(2, 5, 2, target)),  # another pool
    ]
    for t, item in cases:
        assert place(t, pool, [item])[5] == place(t, pool)[5], item
    # Two items that disagree about one slot are both ignored.
    other = next(o.id for o in tree.osds if o.host == tree.osd(target).host and o.id != target)
    both = [Upmap(1, 5, 2, target), Upmap(1, 5, 2, other)]
    assert place(tree, pool, both)[5] == row
    assert place(tree, pool, [Upmap(1, 5, 2, target)] * 2)[5][2] == target


@SETTINGS
@given(trees(), pools(), st.data())
def test_any_upmaps_keep_placement_valid(tree: Tree, pool: PoolSpec, data: st.DataObject) -> None:
    assume(_placeable(tree, pool))
    ids = [o.id for o in tree.osds] + [123_456]
    items = data.draw(
        st.lists(
            st.builds(
                Upmap,
                st.sampled_from([pool.id, pool.id + 1]),
                st.integers(0, pool.pg_count),
                st.integers(0, pool.size),
                st.sampled_from(ids),
            ),
            max_size=40,
        )
    )
    placed = place(tree, pool, items)
    assert_valid(tree, placed)
    for pg in range(pool.pg_count):
        assert place_pg(tree, pool, pg, items) == placed[pg]


@SETTINGS
@given(trees(states=False), pools(), st.data())
def test_out_with_upmaps_moves_only_its_shards(
    tree: Tree, pool: PoolSpec, data: st.DataObject
) -> None:
    assume(_placeable(tree, pool))
    ids = [o.id for o in tree.osds]
    items = data.draw(
        st.lists(
            st.builds(
                Upmap,
                st.just(pool.id),
                st.integers(0, pool.pg_count - 1),
                st.integers(0, pool.size - 1),
                st.sampled_from(ids),
            ),
            max_size=30,
        )
    )
    victim = data.draw(st.sampled_from([o.id for o in tree.osds if o.usable]))
    after_tree = tree.with_state(victim, OsdState.OUT)
    assume(_placeable(after_tree, pool))
    before = place(tree, pool, items)
    after = place(after_tree, pool, items)
    assert not ((before.osds != after.osds) & (before.osds != victim)).any()
