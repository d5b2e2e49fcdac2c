"""Stable hashing: fixed values, no per-process salt, an exact-enough logarithm."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from agent.placement import object_pg, stable_hash64
from agent.placement.hashing import ln_unit, mix64

ROOT = Path(__file__).resolve().parents[2]


def test_stable_hash_is_pinned() -> None:
    # A change here re-places every object in every cluster: it must be deliberate.
    assert stable_hash64("object", 1, "a", 0) == 12308930693752660498
    assert object_pg(1, 128, "photos/cat.jpg", 0) == 39


def test_stable_hash_parts_are_unambiguous() -> None:
    assert stable_hash64("ab", "c") != stable_hash64("a", "bc")
    assert stable_hash64(1) != stable_hash64("1")
    assert stable_hash64(b"x") != stable_hash64("x")


def test_mix64_is_pinned_and_wraps_silently() -> None:
    out = mix64(np.array([0, 1, 2, 2**64 - 1], dtype=np.uint64))
    assert out[:3].tolist() == [0, 6238072747940578789, 15839785061582574730]
    assert out.dtype == np.uint64


@given(st.integers(1, 1 << 20), st.text(max_size=20), st.integers(0, 1000))
def test_object_pg_in_range(pg_count: int, name: str, chunk: int) -> None:
    pg = object_pg(7, pg_count, name, chunk)
    assert 0 <= pg < pg_count
    assert pg == object_pg(7, pg_count, name, chunk)


def test_object_pg_spreads_evenly() -> None:
    counts = np.bincount(
        [object_pg(3, 64, f"obj-{i}", c) for i in range(2000) for c in range(4)], minlength=64
    )
    # 125 expected per PG; 7 sigma is about 78.
    assert counts.min() > 125 - 78
    assert counts.max() < 125 + 78


def test_ln_unit_matches_math_log() -> None:
    rng = np.random.default_rng(1)
    h = np.concatenate(
        [
            rng.integers(0, 2**63, size=20000, dtype=np.uint64) * np.uint64(2),
            np.array([0, 1, 2**12, 2**63, 2**64 - 1], dtype=np.uint64),
        ]
    )
    got = ln_unit(h)
    for x, y in zip(h.tolist(), got.tolist(), strict=True):
        u = 2.0 - (1.0 + ((x >> 12) | 1) / 2**52)
        assert y < 0.0
        assert abs(y - math.log(u)) <= 1e-14 * max(1.0, abs(math.log(u)))


SCRIPT = """
import hashlib, json
from agent.placement import Osd, PoolSpec, Tree, balance, object_pg, place
osds = [Osd(i, f"h{i // 3}", f"r{i // 9}", (1 + i % 4) * 10**12) for i in range(36)]
tree = Tree.of(osds)
pool = PoolSpec(5, 4, 2, 128)
ups = balance(tree, pool)
placed = place(tree, pool, ups)
print(json.dumps({
    "pgs": [object_pg(5, 128, f"obj{i}", i % 3) for i in range(50)],
    "placement": hashlib.sha256(placed.osds.tobytes()).hexdigest(),
    "items": [[u.pool, u.pg, u.position, u.osd] for u in ups],
}))
"""


def _run(seed: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_same_answer_in_other_processes() -> None:
    """Python's hash() is salted per process; placement must not notice."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(SCRIPT, {})
    here = json.loads(buf.getvalue())
    assert _run("1") == here
    assert _run("4242") == here
    assert here["items"], "the balancer should have had something to do"
