"""The optional ``isal`` plugin (pyeclib / ISA-L): same API, different code, honest limits."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from pathlib import Path

import pytest

from agent.ec import (
    Codec,
    ECError,
    InsufficientShards,
    InvalidParameters,
    PluginUnavailable,
    ShardIndexError,
    UnequalShards,
    codec,
)

ec_iface = pytest.importorskip("pyeclib.ec_iface")


@pytest.mark.parametrize(("k", "m"), [(2, 1), (3, 2), (4, 2), (8, 3), (6, 4)])
def test_every_erasure_pattern(k: int, m: int) -> None:
    c = codec(k, m, "isal")
    data = random.Random(k + m).randbytes(1000 * k + 7)
    shards = c.encode(data)
    assert len(shards) == k + m
    assert len({len(s) for s in shards}) == 1
    n = k + m
    for lost in itertools.combinations(range(n), m):
        have = {i: shards[i] for i in range(n) if i not in lost}
        assert c.decode(have, len(data)) == data
        assert c.rebuild(have, lost) == {i: shards[i] for i in lost}


def test_shards_are_plain_pyeclib_fragments() -> None:
    data = bytes(range(256)) * 9
    driver = ec_iface.ECDriver(k=4, m=2, ec_type="isa_l_rs_vand")
    assert codec(4, 2, "isal").encode(data) == driver.encode(data)


def test_code_differs_from_rs() -> None:
    """Why a pool must record its plugin: same data layout, different parity."""
    data = bytes(range(256))  # 4 x 64 bytes: no padding, so payloads line up
    rs = codec(4, 2).encode(data)
    isal = codec(4, 2, "isal").encode(data)
    header = len(isal[0]) - len(rs[0])
    assert header == 80
    assert [f[header:] for f in isal[:4]] == rs[:4]
    assert isal[4][header:] != rs[4]
    assert isal[5][header:] != rs[5]


@pytest.mark.parametrize("size", [0, 1, 5, 999, 4096, 100_003])
def test_shard_size_matches_real_fragments(size: int) -> None:
    c = codec(4, 2, "isal")
    assert c.shard_size(size) == len(c.encode(bytes(size))[0])


def test_decode_checks_size_against_headers() -> None:
    c = codec(3, 2, "isal")
    shards = dict(enumerate(c.encode(b"0123456789")))
    assert c.decode(shards, 4) == b"0123"
    with pytest.raises(ECError):
        c.decode(shards, 11)


def test_vandermonde_is_not_mds_beyond_four_parity() -> None:
    """The reason for ``m <= 4``: isa_l_rs_vand loses data for some 6-shard losses of 6+6."""
    driver = ec_iface.ECDriver(k=6, m=6, ec_type="isa_l_rs_vand")
    data = bytes(range(250)) * 4
    fragments = driver.encode(data)
    failures = 0
    for lost in itertools.combinations(range(12), 6):
        try:
            ok = driver.decode([f for i, f in enumerate(fragments) if i not in lost]) == data
        except Exception:
            ok = False
        failures += not ok
    assert failures > 0
    with pytest.raises(InvalidParameters):
        codec(6, 6, "isal")


def test_errors() -> None:
    c = codec(4, 2, "isal")
    shards = c.encode(b"x" * 100)
    with pytest.raises(InsufficientShards) as err:
        c.decode({0: shards[0], 1: shards[1], 5: shards[5]}, 100)
    assert (err.value.have, err.value.need) == (3, 4)
    with pytest.raises(InsufficientShards):
        c.rebuild(dict(enumerate(shards[:4])), [3])
    with pytest.raises(UnequalShards):
        c.decode({0: shards[0], 1: shards[1][:-1]}, 100)
    with pytest.raises(ShardIndexError):
        c.rebuild(dict(enumerate(shards)), [6])
    with pytest.raises(ECError):
        c.decode({i: b"not a fragment" for i in range(4)}, 14)
    for k, m in [(4, 5), (30, 3), (1, 1)]:
        with pytest.raises(InvalidParameters):
            codec(k, m, "isal")


def test_protocol_and_attributes() -> None:
    c = codec(4, 2, "isal")
    assert isinstance(c, Codec)
    assert (c.k, c.m, c.plugin) == (4, 2, "isal")
    assert c.rebuild(dict(enumerate(c.encode(b"abc"))), []) == {}


def test_missing_pyeclib_is_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyeclib.ec_iface", None)
    with pytest.raises(PluginUnavailable, match="pyeclib"):
        codec(4, 2, "isal")


def test_package_imports_without_pyeclib() -> None:
    code = (
        "import sys; sys.modules['pyeclib'] = None; sys.modules['pyeclib.ec_iface'] = None\n"
        "import agent.ec as ec\n"
        "c = ec.codec(3, 2)\n"
        "assert c.decode(dict(enumerate(c.encode(b'hello'))), 5) == b'hello'\n"
        "assert 'pyeclib.ec_iface' not in [n for n, m in sys.modules.items() if m is not None]\n"
    )
    repo = Path(__file__).resolve().parents[2]  # ``-c`` puts the cwd first on sys.path
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=repo)
