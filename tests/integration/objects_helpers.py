"""Helpers for the object-storage tests: the real ``rack`` CLI with bytes in and out, the
client data path in-process, shard files on the lab's disks, and waiting on the map."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from agent.data.link import DataLink
from agent.data.objects import ObjectClient
from agent.errors import RackError
from agent.lab import Lab, state
from agent.objects.format import ObjectMeta, name_hash
from tests.helpers import wait_until

T = TypeVar("T")
MIB = 1024 * 1024


def rack_bin(
    lab: Lab,
    *args: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[bytes]:
    """The real ``rack`` CLI against the lab; stdout and stderr as bytes."""
    env = {**os.environ, "RACK_CONF": str(lab.client_conf)}
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.main", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        check=False,
        env=env,
        cwd=str(cwd) if cwd is not None else None,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[bytes]:
    """``proc`` after asserting it exited 0 (its stderr in the failure message)."""
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode(errors="replace"))
    return proc


def error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The one error sentence of a failed command, after asserting the CLI's contract:
    exit 1, nothing on stdout, no traceback, and exactly one ``rack:`` error line on
    stderr (warnings may precede it)."""
    err = proc.stderr.decode("utf-8", errors="replace")
    assert proc.returncode == 1, (proc.returncode, err)
    assert proc.stdout == b"", f"a failed command wrote {len(proc.stdout)} bytes to stdout"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("rack: warning:")]
    assert len(errors) == 1, err
    assert errors[0].startswith("rack: "), err
    return errors[0]


def stat_json(lab: Lab, path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(rack_bin(lab, "stat", path, "--json")).stdout)
    return data


def create_pool(lab: Lab, name: str, k: int = 3, m: int = 2, *extra: str) -> None:
    ok(rack_bin(lab, "pool", "create", name, "--k", str(k), "--m", str(m), *extra))


# ---- the client data path in-process ---------------------------------------------------


def with_objects(
    lab: Lab,
    work: Callable[[ObjectClient], Awaitable[T]],
    on_damage: Callable[[str], None] | None = None,
    **client_options: Any,
) -> T:
    """Run ``work`` with a fresh ObjectClient (fresh map, fresh data link), like the CLI;
    ``client_options`` go to the ObjectClient (a skewed clock, say)."""
    with lab.client() as client:
        cmap = client.cluster_map()
        keypair = client.me

    async def run() -> T:
        link = DataLink(keypair)
        try:
            oc = ObjectClient(
                link, lambda: cmap, on_damage=on_damage or (lambda _m: None), **client_options
            )
            return await work(oc)
        finally:
            link.close()

    return asyncio.run(run())


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else min(len(self.data), self.pos + n)
        out = bytes(self.data[self.pos : end])
        self.pos = end
        return out


def put_bytes(lab: Lab, pool: str, name: str, data: bytes) -> str:
    """Store ``data`` in-process; returns the version's hex."""
    stored = with_objects(lab, lambda oc: oc.put(pool, name, _Bytes(data)))  # type: ignore[arg-type]
    return stored.version.hex()


async def read_all(oc: ObjectClient, pool: str, name: str) -> bytes:
    buf = bytearray()
    await oc.get(pool, name, buf.extend)
    return bytes(buf)


def get_bytes(lab: Lab, pool: str, name: str) -> bytes:
    return with_objects(lab, lambda oc: read_all(oc, pool, name))


def head(lab: Lab, pool: str, name: str) -> ObjectMeta:
    return with_objects(lab, lambda oc: oc.head(pool, name))


def content(seed: int, size: int) -> bytes:
    """``size`` pseudo-random bytes, the same for the same seed (distinct seeds differ)."""
    return random.Random(seed).randbytes(size)


# ---- the lab's disks -------------------------------------------------------------------


def pool_id(lab: Lab, pool: str) -> int:
    with lab.client() as client:
        return client.cluster_map().pools[pool].id


def disks(lab: Lab) -> list[Path]:
    st = state.require(lab.dir)
    return [d for n in st.nodes for d in lab.disk_dirs(st, n.name)]


def shard_files(lab: Lab, pool: str, name: str, version: str | None = None) -> list[Path]:
    """Every shard file of ``pool/name`` (of one version, if given) on any lab disk."""
    stem = name_hash(pool_id(lab, pool), name)
    pattern = f"{stem}.{version}.*" if version else f"{stem}.*"
    return sorted(f for d in disks(lab) for f in (d / "shards").glob(f"*/{pattern}"))


def shard_of(files: Iterable[Path], chunk: int, position: int) -> Path:
    """The file of shard ``position`` of chunk ``chunk`` among ``files`` (one version)."""
    found = [f for f in files if f.name.endswith(f".{chunk}.{position}")]
    assert len(found) == 1, (chunk, position, found)
    return found[0]


def disk_of(shard: Path) -> str:
    """The configured disk path a shard file lives on (<disk>/shards/<pg>/<file>)."""
    return str(shard.parents[2])


# ---- the map and the nodes -------------------------------------------------------------


def running(lab: Lab) -> list[str]:
    return [n.name for n in state.require(lab.dir).nodes if n.pid is not None]


def map_states(lab: Lab, viewer: str) -> dict[str, str]:
    try:
        with lab.client(only=viewer) as client:
            cmap = client.cluster_map(timeout=1.0)
    except RackError:
        return {}
    return {name: n.state for name, n in cmap.nodes.items()}


def wait_map_says(lab: Lab, nodes: Iterable[str], want: str, timeout: float = 20.0) -> None:
    """Until every running node's map has each of ``nodes`` in state ``want``."""
    nodes = list(nodes)
    wait_until(
        lambda: all(all(map_states(lab, v).get(n) == want for n in nodes) for v in running(lab)),
        timeout,
        f"every running node's map says {', '.join(nodes)} {want}",
    )


def restore(lab: Lab, timeout: float = 60.0) -> None:
    """Boot every node that was killed and wait until the rack is formed again."""
    st = state.require(lab.dir)
    down = [n.name for n in st.nodes if n.pid is None]
    for name in down:
        lab.boot(name, wait=False)
    lab.wait_converged(timeout)
    if down:
        wait_map_says(lab, [n.name for n in st.nodes], "up", timeout)


def disk_health(lab: Lab) -> dict[str, dict[str, Any]]:
    """``rack status --json``'s disks by path: nodes[].osds[] (ok, errors, problem...)."""
    data = json.loads(ok(rack_bin(lab, "status", "--json")).stdout)
    return {o["path"]: o for node in data["nodes"] for o in node["osds"]}
