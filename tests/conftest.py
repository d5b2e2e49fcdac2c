"""Shared fixtures: keyrings in tmp dirs and real lab racks (real agents, sockets, zeroconf)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.ec import isal_lib
from agent.lab import Lab, netns

isal_lib.install(quiet=True)  # the suite's codecs use the kernel the agents use
IS_ROOT = os.geteuid() == 0
NETNS_REASON = netns.available()

needs_root = pytest.mark.skipif(
    NETNS_REASON is not None, reason=f"netns lab unavailable: {NETNS_REASON}"
)


def make_lab(base: Path, nodes: int, mode: str) -> Lab:
    lab = Lab(base / f"lab-{mode}")
    lab.up(nodes, mode, timeout=60.0)
    return lab


@pytest.fixture(scope="module")
def loopback_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = make_lab(tmp_path_factory.mktemp("loop"), 5, "loopback")
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def netns_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if NETNS_REASON is not None:
        pytest.skip(f"netns lab unavailable: {NETNS_REASON}")
    lab = make_lab(tmp_path_factory.mktemp("ns"), 5, "netns")
    try:
        yield lab
    finally:
        lab.down()
