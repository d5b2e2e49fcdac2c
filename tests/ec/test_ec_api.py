"""The package surface: ``agent.ec.codec``, ``__all__`` and the named errors."""

from __future__ import annotations

import pytest

from agent import ec
from agent.errors import RackError

ERRORS = [
    ec.ECError,
    ec.InsufficientShards,
    ec.InvalidParameters,
    ec.PluginUnavailable,
    ec.ShardIndexError,
    ec.SizeMismatch,
    ec.UnequalShards,
    ec.UnknownPlugin,
]


def test_all_names_exist() -> None:
    for name in ec.__all__:
        assert hasattr(ec, name), name


def test_default_plugin_is_rs() -> None:
    c = ec.codec(4, 2)
    assert (c.k, c.m, c.plugin) == (4, 2, "rs")
    assert isinstance(c, ec.Codec)
    assert "rs" in ec.PLUGINS


def test_unknown_plugin() -> None:
    with pytest.raises(ec.UnknownPlugin) as err:
        ec.codec(4, 2, "jerasure")
    assert "jerasure" in str(err.value)
    assert "rs" in str(err.value)


@pytest.mark.parametrize(("k", "m"), [(1, 2), (0, 1), (4, 0), (-1, 3), (250, 6), ("4", 2)])
def test_parameters_out_of_range(k: object, m: object) -> None:
    with pytest.raises(ec.InvalidParameters):
        ec.codec(k, m)  # type: ignore[arg-type]


@pytest.mark.parametrize(("k", "m"), [(2, 1), (2, 253), (254, 1), (128, 127)])
def test_parameters_at_the_limits(k: int, m: int) -> None:
    c = ec.codec(k, m)
    data = bytes(range(256)) * 2
    shards = c.encode(data)
    lost = list(range(min(m, k)))  # lose data shards: forces real decoding
    have = {i: s for i, s in enumerate(shards) if i not in lost}
    assert c.decode(have, len(data)) == data


def test_errors_are_rack_errors_with_one_sentence() -> None:
    samples = [
        ec.ECError("something failed"),
        ec.InsufficientShards(2, 4),
        ec.InvalidParameters(1, 2, "k must be at least 2"),
        ec.PluginUnavailable("isal", "pyeclib cannot be imported"),
        ec.ShardIndexError(9, 6),
        ec.SizeMismatch(10, 8),
        ec.UnequalShards([3, 4, 3]),
        ec.UnknownPlugin("x", ["rs"]),
    ]
    assert {type(e) for e in samples} == set(ERRORS)
    for err in samples:
        assert isinstance(err, RackError)
        assert isinstance(err, ec.ECError)
        text = str(err)
        assert text[0].islower(), text
        assert not text.endswith("."), text
        assert "\n" not in text
        assert text.count(". ") == 0, text


def test_error_attributes() -> None:
    err = ec.InsufficientShards(have=2, need=4)
    assert (err.have, err.need) == (2, 4)
    assert "2" in str(err)
    assert "4" in str(err)
    assert ec.UnequalShards([3, 4, 3]).lengths == [3, 4]
    assert ec.ShardIndexError(9, 6).index == 9
    assert ec.SizeMismatch(10, 8).capacity == 8
