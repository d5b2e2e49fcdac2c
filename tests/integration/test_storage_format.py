"""docs/storage-format.md is enough to recover objects: its example decoder, which imports
nothing from agent, reads a real lab rack's disks, also with shards damaged or deleted."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

from agent.lab import Lab
from agent.objects.format import ObjectMeta, Version, name_hash
from agent.store import MetaJournal
from tests.helpers import rack

pytestmark = pytest.mark.integration
DECODER = Path(__file__).resolve().parents[2] / "docs" / "examples" / "decode_object.py"
K, M = 3, 2


def decode(pool_id: int, name: str, disks: list[Path]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(DECODER), "--pool-id", str(pool_id), "--name", name, *map(str, disks)],
        capture_output=True,
        check=False,
        timeout=60,
    )


def shard_files(
    disks: list[Path], pool_id: int, name: str, chunk: int, position: int
) -> list[Path]:
    pattern = f"shards/*/{name_hash(pool_id, name)}.*.{chunk}.{position}"
    return [f for disk in disks for f in disk.glob(pattern)]


def test_the_documented_decoder_recovers_objects_from_the_disks(
    loopback_lab: Lab, tmp_path: Path
) -> None:
    made = rack(loopback_lab, "pool", "create", "fmt", "--k", str(K), "--m", str(M))
    assert made.returncode == 0, made.stderr
    pools = json.loads(rack(loopback_lab, "pool", "ls", "--json").stdout)
    pool_id = next(p["id"] for p in pools if p["name"] == "fmt")
    small, big = os.urandom(1000), os.urandom(9 * 1024 * 1024 + 12345)  # inline; 3 chunks
    (tmp_path / "small").write_bytes(small)
    (tmp_path / "big").write_bytes(big)
    for name, src in (("small.bin", "small"), ("dir/big.bin", "big")):
        put = rack(loopback_lab, "put", f"fmt/{name}", str(tmp_path / src))
        assert put.returncode == 0, put.stderr
    assert "(3 chunks)" in put.stdout
    disks = [loopback_lab.node_dir(f"n{i}") / f"disk{j}" for i in range(1, 6) for j in range(2)]

    for name, data in (("small.bin", small), ("dir/big.bin", big)):
        out = decode(pool_id, name, disks)
        assert out.returncode == 0, out.stderr
        assert out.stdout == data
        assert out.stderr == b""  # healthy: nothing skipped, nothing rebuilt

    # a damaged block: that shard is skipped and parity stands in
    (first,) = shard_files(disks, pool_id, "dir/big.bin", 0, 0)
    raw = bytearray(first.read_bytes())
    (header_len,) = struct.unpack_from("<I", raw, 8)
    raw[12 + header_len + 8 + 8 + 100] ^= 0xFF  # byte 100 of block 0
    first.write_bytes(raw)
    out = decode(pool_id, "dir/big.bin", disks)
    assert out.returncode == 0, out.stderr
    assert out.stdout == big
    assert b"block 0 fails its checksum" in out.stderr

    # m data shards of every chunk deleted, a different pair each: reedsolo rebuilds them
    lost = {0: (0, 1), 1: (1, 2), 2: (0, 2)}
    for chunk, positions in lost.items():
        for position in positions:
            (path,) = shard_files(disks, pool_id, "dir/big.bin", chunk, position)
            path.unlink()
    out = decode(pool_id, "dir/big.bin", disks)
    assert out.returncode == 0, out.stderr
    assert out.stdout == big
    assert out.stderr.count(b"rebuilding data shards") == 3

    # a shard file of a format the decoder does not know is refused, not guessed at
    (needed,) = shard_files(disks, pool_id, "dir/big.bin", 0, 2)
    raw = bytearray(needed.read_bytes())
    struct.pack_into("<H", raw, 4, 99)
    needed.write_bytes(raw)
    out = decode(pool_id, "dir/big.bin", disks)
    assert out.returncode == 1
    assert out.stdout == b""
    assert b"has format 99, which this decoder does not know (it knows 1)" in out.stderr
    # the inline object needs no shards at all
    out = decode(pool_id, "small.bin", disks)
    assert (out.returncode, out.stdout) == (0, small)


def test_the_decoder_reads_snapshots_torn_journals_and_tombstones(tmp_path: Path) -> None:
    def inline(ts: int, data: bytes) -> ObjectMeta:
        checksum = xxhash.xxh3_64_intdigest(data)
        version = Version(ts, 1)
        return ObjectMeta(
            pool=7, name="x", version=version, size=len(data), inline=data, checksum=checksum
        )

    disks = [tmp_path / "a", tmp_path / "b"]
    journal = MetaJournal(disks[0])
    journal.open()
    journal.commit([inline(10, b"old")])
    journal.compact()  # snapshot.1 holds "old", journal.1 is empty
    journal.commit([inline(30, b"new")])
    journal.close()
    with open(disks[0] / "meta" / "journal.1", "ab") as f:
        f.write(b"\x40\x00\x00\x00torn")  # a crash in the middle of an append
    assert sorted(p.name for p in (disks[0] / "meta").iterdir()) == ["journal.1", "snapshot.1"]
    other = MetaJournal(disks[1])
    other.open()
    other.commit([inline(20, b"older, on another disk")])
    other.close()
    out = decode(7, "x", disks)
    assert (out.returncode, out.stdout) == (0, b"new")
    assert b"torn or damaged" in out.stderr

    other.open()
    tomb = ObjectMeta(pool=7, name="x", version=Version(40, 2), deleted=True)
    other.commit([tomb])
    other.close()
    out = decode(7, "x", disks)
    assert out.returncode == 1
    assert b"was deleted" in out.stderr
