"""Shard files: round trips, the documented byte layout, and every kind of damage caught."""

from __future__ import annotations

import os
import random
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest
import xxhash

from agent.store import (
    BLOCK_SIZE,
    BadShard,
    CorruptShard,
    DiskFull,
    DiskIOError,
    ShardHeader,
    ShardId,
    ShardNotFound,
    ShardStore,
    UnknownFormat,
    Version,
)
from tests.store.store_helpers import tmpfs

LENGTHS = [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE]


def shard(
    length: int, position: int = 0, name: str = "photos/cat.jpg"
) -> tuple[ShardHeader, bytes]:
    sid = ShardId(
        pool=3, pg=0x2A, object=name, version=Version(1000, 7), chunk=0, position=position
    )
    header = ShardHeader(
        id=sid, k=2, m=1, plugin="rs", chunk_len=2 * length, shard_len=length, written_at=5.0
    )
    return header, random.Random(f"{name}/{position}/{length}").randbytes(length)


def expected_size(header: ShardHeader) -> int:
    blocks = -(-header.shard_len // header.block_size)
    return 12 + len(msgspec.msgpack.encode(header)) + 8 + 8 * blocks + header.shard_len


@pytest.fixture
def store(tmp_path: Path) -> ShardStore:
    s = ShardStore(tmp_path / "disk")
    assert s.open() == 0
    return s


def file_of(store: ShardStore, sid: ShardId) -> Path:
    return store.root / "shards" / sid.dir_name() / sid.file_name()


def visible(store: ShardStore) -> list[str]:
    """Every file under shards/ and incoming/."""
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


@pytest.mark.parametrize("length", LENGTHS)
def test_round_trip(store: ShardStore, length: int) -> None:
    header, data = shard(length)
    store.put(header, data)
    got_header, got = store.get(header.id)
    assert got_header == header
    assert got == data
    size = file_of(store, header.id).stat().st_size
    assert size == expected_size(header)
    assert store.used_bytes == size
    assert store.errors == 0
    assert list((store.root / "incoming").iterdir()) == []


def test_a_memoryview_is_accepted(store: ShardStore) -> None:
    header, data = shard(BLOCK_SIZE + 5)
    store.put(header, memoryview(bytearray(data)))
    assert store.get(header.id)[1] == data


def test_the_file_follows_the_documented_layout(store: ShardStore) -> None:
    header, data = shard(2 * BLOCK_SIZE + 10)
    store.put(header, data)
    raw = file_of(store, header.id).read_bytes()
    magic, fmt, zero, hlen = struct.unpack_from("<4sHHI", raw)
    assert (magic, fmt, zero) == (b"RCSH", 1, 0)
    body = raw[12 : 12 + hlen]
    assert msgspec.msgpack.decode(body, type=ShardHeader) == header
    pos = 12 + hlen
    assert struct.unpack_from("<Q", raw, pos)[0] == xxhash.xxh3_64_intdigest(body)
    pos += 8
    blocks = []
    while pos < len(raw):
        (digest,) = struct.unpack_from("<Q", raw, pos)
        block = raw[pos + 8 : pos + 8 + BLOCK_SIZE]
        assert digest == xxhash.xxh3_64_intdigest(block)
        blocks.append(block)
        pos += 8 + len(block)
    assert [len(b) for b in blocks] == [BLOCK_SIZE, BLOCK_SIZE, 10]
    assert b"".join(blocks) == data


def damage_at(length: int) -> dict[str, int]:
    """Offsets into a shard file of ``length`` data bytes, by what lives there."""
    header, _ = shard(length)
    hlen = len(msgspec.msgpack.encode(header))
    first_block = 12 + hlen + 8
    return {
        "header": 20,
        "header checksum": 12 + hlen + 3,
        "block checksum": first_block + 8 + BLOCK_SIZE + 2,  # block 1's checksum
        "data": first_block + 2 * (8 + BLOCK_SIZE) + 8 + 100,  # inside block 2
        "magic": 1,
        "padding": 6,
    }


@pytest.mark.parametrize("where", list(damage_at(0)))
def test_a_flipped_byte_is_caught_and_counted(store: ShardStore, where: str) -> None:
    header, data = shard(3 * BLOCK_SIZE)
    store.put(header, data)
    path = file_of(store, header.id)
    raw = bytearray(path.read_bytes())
    raw[damage_at(3 * BLOCK_SIZE)[where]] ^= 0x40
    path.write_bytes(raw)
    with pytest.raises(CorruptShard) as err:
        store.get(header.id)
    assert str(err.value).startswith(f"shard file {path} is damaged: ")
    assert err.value.file == str(path)
    assert store.errors == 1
    if where in ("block checksum", "data"):
        assert str(err.value).endswith(
            f"block {1 if where == 'block checksum' else 2} fails its checksum"
        )
    with pytest.raises(CorruptShard):
        store.get(header.id)
    assert store.errors == 2


@pytest.mark.parametrize("cut", [1, 8, 500, BLOCK_SIZE + 20])
def test_a_truncated_file_is_corrupt(store: ShardStore, cut: int) -> None:
    header, data = shard(2 * BLOCK_SIZE)
    store.put(header, data)
    path = file_of(store, header.id)
    size = path.stat().st_size
    os.truncate(path, size - cut)
    with pytest.raises(CorruptShard):
        store.get(header.id)
    assert store.errors == 1


def test_a_file_too_long_or_cut_inside_its_header_is_corrupt(store: ShardStore) -> None:
    header, data = shard(100)
    store.put(header, data)
    path = file_of(store, header.id)
    with path.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(CorruptShard, match=f"is {expected_size(header) + 1} bytes long, not"):
        store.get(header.id)
    os.truncate(path, 30)
    with pytest.raises(CorruptShard, match="ends inside its header"):
        store.get(header.id)
    os.truncate(path, 5)
    with pytest.raises(CorruptShard, match="only 5 bytes long"):
        store.get(header.id)
    assert store.errors == 3


def test_a_file_holding_another_shard_is_corrupt(store: ShardStore) -> None:
    one, data = shard(10, position=0)
    two, _ = shard(10, position=1)
    store.put(one, data)
    file_of(store, two.id).write_bytes(file_of(store, one.id).read_bytes())
    with pytest.raises(CorruptShard, match=r"it holds shard 0 of chunk 0 .*, not shard 1"):
        store.get(two.id)


def test_an_unknown_format_is_refused_but_not_counted_as_damage(store: ShardStore) -> None:
    header, data = shard(10)
    store.put(header, data)
    path = file_of(store, header.id)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<H", raw, 4, 2)
    path.write_bytes(raw)
    with pytest.raises(UnknownFormat, match="has format 2"):
        store.get(header.id)
    assert store.errors == 0
    assert list(store.scan()) == []


def test_a_deleted_shard_is_not_found(store: ShardStore) -> None:
    header, data = shard(BLOCK_SIZE + 1)
    store.put(header, data)
    assert store.delete(header.id) is True
    assert store.used_bytes == 0
    with pytest.raises(ShardNotFound) as err:
        store.get(header.id)
    assert "has no file for shard 0 of chunk 0 of object 'photos/cat.jpg'" in str(err.value)
    assert store.delete(header.id) is False
    assert store.errors == 1  # a read of a shard that should be there counts as damage


def test_a_retry_replaces_the_file_and_counts_it_once(store: ShardStore) -> None:
    header, data = shard(1000)
    store.put(header, data)
    store.put(header, data)
    assert store.used_bytes == expected_size(header)
    assert store.get(header.id)[1] == data


def test_data_that_does_not_match_its_header_is_refused(store: ShardStore) -> None:
    header, data = shard(1000)
    with pytest.raises(BadShard, match="999 bytes of data came with a header saying 1000"):
        store.put(header, data[:-1])
    with pytest.raises(BadShard, match="block size 0"):
        store.put(msgspec.structs.replace(header, block_size=0), data)
    with pytest.raises(BadShard, match="format 9"):
        store.put(msgspec.structs.replace(header, format=9), data)
    assert visible(store) == []
    assert store.used_bytes == 0


def test_open_removes_incomplete_writes_and_measures_usage(tmp_path: Path) -> None:
    first = ShardStore(tmp_path / "disk")
    first.open()
    for position in range(3):
        header, data = shard(5000, position=position)
        first.put(header, data)
    (first.root / "incoming" / "a.tmp").write_bytes(b"x" * 100)
    (first.root / "incoming" / "b.tmp").write_bytes(b"")
    again = ShardStore(tmp_path / "disk")
    assert again.open() == 2
    assert list((again.root / "incoming").iterdir()) == []
    assert again.used_bytes == first.used_bytes == 3 * expected_size(shard(5000)[0])


def test_the_reserve_refuses_a_write_and_leaves_nothing(tmp_path: Path) -> None:
    probe = ShardStore(tmp_path / "disk")
    probe.open()
    _, free = probe.space()
    store = ShardStore(tmp_path / "disk", reserve_bytes=free)
    store.open()
    header, data = shard(10)
    with pytest.raises(DiskFull, match=f"is full: .* bytes free, {free} kept in reserve"):
        store.put(header, data)
    assert visible(store) == []
    assert store.used_bytes == 0
    with pytest.raises(ShardNotFound):
        store.get(header.id)


def test_space_reports_the_filesystem(store: ShardStore) -> None:
    total, free = store.space()
    st = os.statvfs(store.root)
    assert total == st.f_blocks * st.f_frsize
    assert 0 < free <= total


def test_an_os_error_on_read_is_a_disk_io_error_and_counted(store: ShardStore) -> None:
    header, data = shard(10)
    store.put(header, data)
    group = file_of(store, header.id).parent
    for f in group.iterdir():
        f.unlink()
    group.rmdir()
    group.write_bytes(b"not a directory")
    with pytest.raises(DiskIOError, match=f"disk {store.root} could not read shard file"):
        store.get(header.id)
    assert store.errors == 1


def test_scan_lists_headers_and_skips_untrustworthy_ones(store: ShardStore) -> None:
    headers = [shard(BLOCK_SIZE, position=p)[0] for p in range(4)]
    for header in headers:
        store.put(header, shard(BLOCK_SIZE, position=header.id.position)[1])
    # Damage the data of 0 (scan reads headers only), the header of 1, misplace 2 as 9.
    paths = [file_of(store, h.id) for h in headers]
    raw = bytearray(paths[0].read_bytes())
    raw[-1] ^= 1
    paths[0].write_bytes(raw)
    raw = bytearray(paths[1].read_bytes())
    raw[20] ^= 1
    paths[1].write_bytes(raw)
    misplaced = shard(1, position=9)[0]
    os.rename(paths[2], file_of(store, misplaced.id))
    found = dict((h.id.position, mtime) for h, mtime in store.scan())
    assert sorted(found) == [0, 3]
    assert found[3] == paths[3].stat().st_mtime
    assert store.errors == 2


def test_concurrent_puts_and_gets_on_different_shards(store: ShardStore) -> None:
    def work(position: int) -> bool:
        header, data = shard(BLOCK_SIZE + position, position=position)
        store.put(header, data)
        return store.get(header.id)[1] == data

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(32)))
    assert store.used_bytes == sum(
        expected_size(shard(BLOCK_SIZE + p, position=p)[0]) for p in range(32)
    )
    assert len(list(store.scan())) == 32


def test_a_full_filesystem_refuses_a_shard_and_keeps_the_others(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "size=1m") as mnt:
        store = ShardStore(mnt)
        store.open()
        written = []
        with pytest.raises(DiskFull, match=f"disk {mnt} is full: .* bytes free"):
            for position in range(20):
                header, data = shard(200_000, position=position)
                store.put(header, data)
                written.append(header)
        assert 2 <= len(written) < 20
        assert list((mnt / "incoming").iterdir()) == []
        with pytest.raises(ShardNotFound):
            store.get(shard(1, position=len(written))[0].id)
        for header in written:
            assert store.get(header.id)[1] == shard(200_000, position=header.id.position)[1]
        assert store.used_bytes == len(written) * expected_size(written[0])


def test_running_out_of_inodes_is_disk_full(tmp_path: Path) -> None:
    # root, incoming/, shards/ and one group directory leave room for a few files only.
    with tmpfs(tmp_path / "small", "size=1m,nr_inodes=8") as mnt:
        store = ShardStore(mnt)
        store.open()
        count = 0
        with pytest.raises(DiskFull, match=f"disk {mnt} is full, so it could not write"):
            for position in range(20):
                store.put(*shard(10, position=position))
                count += 1
        assert 1 <= count < 20
        assert store.errors == 0
        assert len(list(store.scan())) == count
        assert list((mnt / "incoming").iterdir()) == []
