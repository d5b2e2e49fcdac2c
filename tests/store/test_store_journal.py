"""The metadata journal: newest version wins, crashes tear only the tail, compaction keeps all."""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store import (
    CorruptJournal,
    DiskFull,
    MetaJournal,
    ObjectMeta,
    StoreError,
    UnknownFormat,
    Version,
)
from agent.store.journal import frame
from tests.store.store_helpers import tmpfs


def meta(name: str, ts: int, *, deleted: bool = False, pool: int = 1, size: int = 0) -> ObjectMeta:
    return ObjectMeta(pool=pool, name=name, version=Version(ts, 7), deleted=deleted, size=size)


def opened(root: Path) -> tuple[MetaJournal, int]:
    journal = MetaJournal(root)
    count = journal.open()
    return journal, count


def reopen(journal: MetaJournal) -> tuple[MetaJournal, int]:
    journal.close()
    return opened(journal.root)


def meta_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "meta").iterdir())


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[MetaJournal]:
    j, count = opened(tmp_path / "disk")
    assert count == 0
    yield j
    j.close()


def test_a_new_journal_is_just_a_preamble(journal: MetaJournal) -> None:
    path = journal.root / "meta" / "journal.0"
    assert path.read_bytes() == b"RCMETA\0\0" + struct.pack("<II", 1, 0)
    assert journal.size_bytes == 16
    assert len(journal) == 0


def test_the_newer_version_wins_and_an_older_one_is_ignored(journal: MetaJournal) -> None:
    assert journal.commit([meta("a", 10, size=1)]) == [True]
    assert journal.commit([meta("a", 20, size=2)]) == [True]
    assert journal.commit([meta("a", 15, size=3)]) == [False]
    assert journal.commit([meta("a", 20, size=4)]) == [False]  # equal is not newer
    assert journal.get(1, "a") == meta("a", 20, size=2)
    assert journal.get(2, "a") is None
    again, count = reopen(journal)
    assert count == 2
    assert again.get(1, "a") == meta("a", 20, size=2)
    again.close()


def test_a_tombstone_is_kept_and_not_undone_by_an_older_version(journal: MetaJournal) -> None:
    journal.commit([meta("a", 10)])
    assert journal.commit([meta("a", 20, deleted=True)]) == [True]
    assert journal.commit([meta("a", 15)]) == [False]
    assert journal.items(1) == [meta("a", 20, deleted=True)]
    again, _ = reopen(journal)
    assert again.get(1, "a") == meta("a", 20, deleted=True)
    assert again.commit([meta("a", 30)]) == [True]
    again.close()


def test_a_batch_compares_each_record_with_the_earlier_ones(journal: MetaJournal) -> None:
    journal.commit([meta("b", 5)])
    batch = [meta("a", 2), meta("a", 1), meta("a", 3), meta("b", 4), meta("c", 1), meta("c", 1)]
    assert journal.commit(batch) == [True, False, True, False, True, False]
    assert [(m.name, m.version.ts) for m in journal.items(1)] == [("a", 3), ("b", 5), ("c", 1)]
    written = sum(len(frame(m)) for m in (meta("b", 5), meta("a", 2), meta("a", 3), meta("c", 1)))
    assert journal.size_bytes == 16 + written
    assert journal.commit([]) == []
    assert journal.commit([meta("a", 1)]) == [False]
    assert journal.size_bytes == 16 + written
    again, count = reopen(journal)
    assert count == 4
    assert [(m.name, m.version.ts) for m in again.items(1)] == [("a", 3), ("b", 5), ("c", 1)]
    again.close()


def test_items_filters_by_pool_and_prefix_and_sorts_by_name(journal: MetaJournal) -> None:
    journal.commit([meta("x/2", 1), meta("x/1", 1), meta("y", 1), meta("x/3", 1, pool=2)])
    assert [m.name for m in journal.items(1, "x/")] == ["x/1", "x/2"]
    assert [m.name for m in journal.items(1)] == ["x/1", "x/2", "y"]
    assert [m.name for m in journal.items(2)] == ["x/3"]
    assert journal.items(3) == []
    assert len(journal) == 4


def test_a_torn_tail_is_cut_and_later_records_are_appended(journal: MetaJournal) -> None:
    for ts in (1, 2, 3):
        journal.commit([meta(f"n{ts}", ts)])
    path = journal.root / "meta" / "journal.0"
    good = path.stat().st_size
    journal.close()
    with path.open("ab") as f:
        f.write(frame(meta("torn", 4))[:-5])
    again, count = opened(journal.root)
    assert count == 3
    assert path.stat().st_size == good
    assert again.get(1, "torn") is None
    assert again.commit([meta("n4", 4)]) == [True]
    third, count = reopen(again)
    assert count == 4
    assert [m.name for m in third.items(1)] == ["n1", "n2", "n3", "n4"]
    third.close()


def test_a_torn_record_header_is_cut_too(journal: MetaJournal) -> None:
    journal.commit([meta("a", 1)])
    path = journal.root / "meta" / "journal.0"
    good = path.stat().st_size
    journal.close()
    with path.open("ab") as f:
        f.write(b"\x05\0\0")
    again, count = opened(journal.root)
    assert (count, path.stat().st_size) == (1, good)
    again.close()


def test_a_damaged_middle_record_is_skipped_and_the_later_ones_kept(journal: MetaJournal) -> None:
    for ts in (1, 2, 3):
        journal.commit([meta(f"n{ts}", ts)])
    path = journal.root / "meta" / "journal.0"
    first_end = 16 + len(frame(meta("n1", 1)))
    raw = bytearray(path.read_bytes())
    raw[first_end + 14] ^= 0xFF  # inside the second record's body
    journal.close()
    path.write_bytes(raw)
    again, count = opened(journal.root)
    assert count == 2
    assert [m.name for m in again.items(1)] == ["n1", "n3"]  # n3 was acknowledged: kept
    assert again.damaged == 1
    assert path.stat().st_size == len(raw)  # nothing cut
    again.commit([meta("n4", 4)])
    again.close()
    third, _ = opened(journal.root)
    assert [m.name for m in third.items(1)] == ["n1", "n3", "n4"]
    third.close()


def test_a_damaged_last_record_is_a_torn_tail_and_cut(journal: MetaJournal) -> None:
    for ts in (1, 2):
        journal.commit([meta(f"n{ts}", ts)])
    path = journal.root / "meta" / "journal.0"
    first_end = 16 + len(frame(meta("n1", 1)))
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    journal.close()
    path.write_bytes(raw)
    again, count = opened(journal.root)
    assert count == 1
    assert again.damaged == 0
    assert path.stat().st_size == first_end
    again.close()


def test_an_unknown_preamble_format_is_refused(journal: MetaJournal) -> None:
    journal.commit([meta("a", 1)])
    path = journal.root / "meta" / "journal.0"
    journal.close()
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 8, 2)
    path.write_bytes(raw)
    with pytest.raises(UnknownFormat, match=f"metadata file {path} has format 2"):
        MetaJournal(journal.root).open()
    assert path.read_bytes() == raw  # not cut


def test_a_record_of_an_unknown_format_is_refused(journal: MetaJournal) -> None:
    journal.commit([meta("a", 1), ObjectMeta(format=3, pool=1, name="b", version=Version(1, 1))])
    journal.close()
    with pytest.raises(UnknownFormat, match="has format 3"):
        MetaJournal(journal.root).open()


def test_a_wrong_magic_is_refused(journal: MetaJournal) -> None:
    path = journal.root / "meta" / "journal.0"
    journal.close()
    path.write_bytes(b"NOTMETA!" + bytes(8))
    with pytest.raises(CorruptJournal, match="does not start with a metadata preamble"):
        MetaJournal(journal.root).open()


def test_a_journal_torn_inside_its_preamble_is_started_again(journal: MetaJournal) -> None:
    path = journal.root / "meta" / "journal.0"
    journal.close()
    path.write_bytes(b"RCME")
    again, count = opened(journal.root)
    assert count == 0
    assert path.stat().st_size == 16
    assert again.commit([meta("a", 1)]) == [True]
    again.close()


def fill(journal: MetaJournal) -> list[ObjectMeta]:
    """Several versions of some names, a tombstone, two pools; returns the newest of each."""
    for ts in range(1, 6):
        journal.commit([meta(f"obj{i}", ts, size=ts * i) for i in range(10)])
    journal.commit([meta("obj3", 9, deleted=True), meta("other", 1, pool=2)])
    return [journal.get(m.pool, m.name) for m in journal.items(1) + journal.items(2)]


def test_compaction_keeps_every_record_and_survives_reopen(journal: MetaJournal) -> None:
    newest = fill(journal)
    before = journal.size_bytes
    journal.compact()
    assert meta_files(journal.root) == ["journal.1", "snapshot.1"]
    assert journal.size_bytes < before
    assert journal.items(1) + journal.items(2) == newest
    assert journal.commit([meta("obj3", 5)]) == [False]
    assert journal.commit([meta("new", 1)]) == [True]
    again, count = reopen(journal)
    assert count == len(newest) + 1
    pool_one = sorted([*newest[:-1], meta("new", 1)], key=lambda m: m.name)
    assert again.items(1) == pool_one
    assert again.items(2) == newest[-1:]
    again.compact()
    assert meta_files(again.root) == ["journal.2", "snapshot.2"]
    third, count = reopen(again)
    assert count == len(newest) + 1
    assert third.get(1, "obj3") == meta("obj3", 9, deleted=True)
    third.close()


def test_a_crash_during_compaction_leaves_a_generation_to_open(journal: MetaJournal) -> None:
    newest = fill(journal)
    old_journal = (journal.root / "meta" / "journal.0").read_bytes()
    journal.compact()
    journal.close()
    meta_dir = journal.root / "meta"
    # As if the crash came after snapshot.1 was renamed, before journal.1 and the cleanup.
    (meta_dir / "journal.1").unlink()
    (meta_dir / "journal.0").write_bytes(old_journal)
    (meta_dir / "snapshot.2.tmp").write_bytes(b"half a snapshot")
    again, count = opened(journal.root)
    assert count == len(newest)
    assert meta_files(journal.root) == ["journal.1", "snapshot.1"]
    assert again.items(1) + again.items(2) == newest
    again.close()


def test_a_damaged_snapshot_is_refused(journal: MetaJournal) -> None:
    fill(journal)
    journal.compact()
    journal.close()
    path = journal.root / "meta" / "snapshot.1"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 1
    path.write_bytes(raw)
    with pytest.raises(CorruptJournal, match=f"metadata file {path} is damaged: the record"):
        MetaJournal(journal.root).open()
    os.truncate(path, len(raw) - 1)
    with pytest.raises(CorruptJournal, match="is cut short"):
        MetaJournal(journal.root).open()


def test_a_journal_newer_than_every_snapshot_is_refused(journal: MetaJournal) -> None:
    journal.commit([meta("a", 1)])
    journal.close()
    meta_dir = journal.root / "meta"
    os.rename(meta_dir / "journal.0", meta_dir / "journal.3")
    with pytest.raises(CorruptJournal, match=r"journal\.3 is damaged: its snapshot is missing"):
        MetaJournal(journal.root).open()


def test_a_large_journal_is_compacted_at_open(journal: MetaJournal) -> None:
    blob = bytes(1 << 20)
    versions = [
        ObjectMeta(pool=1, name="big", version=Version(ts, 1), inline=blob) for ts in range(1, 66)
    ]
    assert all(journal.commit(versions))
    assert journal.size_bytes > 64 * 1024 * 1024
    again, count = reopen(journal)
    assert count == 65
    assert meta_files(journal.root) == ["journal.1", "snapshot.1"]
    assert again.size_bytes < 2 * (1 << 20)
    assert again.get(1, "big") == versions[-1]
    again.close()


def test_commit_needs_an_open_journal(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is not open"):
        MetaJournal(tmp_path).commit([meta("a", 1)])


def test_reads_run_while_another_thread_commits(journal: MetaJournal) -> None:
    stop = threading.Event()
    failures: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                names = [m.name for m in journal.items(1)]
                assert names == sorted(names)
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(300):
            journal.commit([meta(f"n{i:04}", 1), meta(f"n{i // 2:04}", 2)])
    finally:
        stop.set()
        reader.join()
    assert failures == []
    assert len(journal) == 300


def test_a_full_filesystem_fails_the_commit_and_cuts_it_back(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "size=1m") as mnt:
        journal, _ = opened(mnt)
        committed = []
        with pytest.raises(DiskFull, match=f"disk {mnt} is full, so it could not append"):
            for ts in range(1, 40):
                record = ObjectMeta(
                    pool=1, name=f"o{ts}", version=Version(ts, 1), inline=bytes(100_000)
                )
                journal.commit([record])
                committed.append(record)
        assert 3 <= len(committed) < 39
        path = mnt / "meta" / "journal.0"
        assert path.stat().st_size == journal.size_bytes
        assert journal.get(1, f"o{len(committed) + 1}") is None
        assert journal.commit([committed[0]]) == [False]  # still usable for reads and no-ops
        again, count = reopen(journal)
        assert count == len(committed)
        assert again.items(1) == sorted(committed, key=lambda m: m.name)
        again.close()
