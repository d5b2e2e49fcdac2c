"""The on-disk log: framing, durability calls, torn and corrupt tails, snapshots."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.raft import (
    Entry,
    HardState,
    MemoryStorage,
    PersistentState,
    Ready,
    Snapshot,
    StorageCorrupt,
    persist,
)
from agent.raft.storage import HARD_STATE_FILE, LOG_FILE, SNAPSHOT_FILE, DiskStorage, frame


def entries(lo: int, hi: int, term: int = 1) -> tuple[Entry, ...]:
    return tuple(Entry(i, term, data=b"cmd%d" % i) for i in range(lo, hi + 1))


def test_roundtrip(tmp_path: Path) -> None:
    with DiskStorage(tmp_path / "n1") as s:
        s.append(entries(1, 3))
        s.save_hard_state(HardState(2, 1, 3))
    with DiskStorage(tmp_path / "n1") as s:
        assert s.load() == PersistentState(HardState(2, 1, 3), None, entries(1, 3))


def test_empty_directory_loads_initial_state(tmp_path: Path) -> None:
    with DiskStorage(tmp_path / "fresh") as s:
        assert s.load() == PersistentState()


def test_truncate_then_append(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as s:
        s.append(entries(1, 5))
        s.truncate_from(3)
        s.append(entries(3, 4, term=2))
    with DiskStorage(tmp_path) as s:
        assert s.load().entries == entries(1, 2) + entries(3, 4, term=2)


def test_append_must_follow_the_last_entry(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as s:
        s.append(entries(1, 2))
        with pytest.raises(ValueError):
            s.append(entries(4, 4))


def test_snapshot_compacts_and_keeps_the_connected_suffix(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as s:
        s.append(entries(1, 6))
        s.save_snapshot(Snapshot(4, 1, (1, 2, 3), b"state"))
        s.append(entries(7, 7))
    with DiskStorage(tmp_path) as s:
        st_ = s.load()
        assert st_.snapshot == Snapshot(4, 1, (1, 2, 3), b"state")
        assert st_.entries == entries(5, 7)


def test_snapshot_from_a_diverged_history_drops_the_log(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as s:
        s.append(entries(1, 6))
        s.save_snapshot(Snapshot(4, 3, (1, 2, 3), b"leader's"))  # term 3 at 4: not ours
        assert s.load().entries == ()
        s.append(entries(5, 5, term=3))
    with DiskStorage(tmp_path) as s:
        assert s.load().entries == entries(5, 5, term=3)


def test_crash_between_snapshot_and_log_rewrite_is_repaired(tmp_path: Path) -> None:
    with DiskStorage(tmp_path) as s:
        s.append(entries(1, 6))
    # As if the process died right after the snapshot file was renamed into place.
    payload = frame(__import__("msgspec").msgpack.encode(Snapshot(4, 1, (1,), b"")))
    (tmp_path / SNAPSHOT_FILE).write_bytes(payload)
    with DiskStorage(tmp_path) as s:
        assert s.load().entries == entries(5, 6)


def _write_three(path: Path) -> int:
    with DiskStorage(path) as s:
        s.append(entries(1, 3))
        s.save_hard_state(HardState(1, None, 2))
    return (path / LOG_FILE).stat().st_size


def test_torn_tail_is_truncated_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = _write_three(tmp_path)
    rec = len(frame(__import__("msgspec").msgpack.encode(entries(3, 3)[0])))
    os.truncate(tmp_path / LOG_FILE, size - 3)  # cut the last record mid-way
    with caplog.at_level(logging.WARNING), DiskStorage(tmp_path) as s:
        assert s.load().entries == entries(1, 2)
        s.append(entries(3, 3, term=2))  # appends cleanly after the cut
    assert (tmp_path / LOG_FILE).stat().st_size == size
    msg = caplog.text
    assert str(tmp_path / LOG_FILE) in msg and f"offset {size - rec}" in msg
    assert "short record" in msg
    with DiskStorage(tmp_path) as s:
        assert s.load().entries == entries(1, 2) + entries(3, 3, term=2)


def test_zero_filled_tail_is_a_torn_write(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Some filesystems leave zeroed blocks after a crash; that is a tail, not damage."""
    size = _write_three(tmp_path)
    with open(tmp_path / LOG_FILE, "ab") as f:
        f.write(bytes(4096))
    with caplog.at_level(logging.WARNING), DiskStorage(tmp_path) as s:
        assert s.load().entries == entries(1, 3)
    assert f"offset {size}" in caplog.text
    assert (tmp_path / LOG_FILE).stat().st_size == size


def test_short_header_is_truncated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    size = _write_three(tmp_path)
    with open(tmp_path / LOG_FILE, "ab") as f:
        f.write(b"\x05\x00")
    with caplog.at_level(logging.WARNING), DiskStorage(tmp_path) as s:
        assert s.load().entries == entries(1, 3)
    assert f"offset {size}" in caplog.text and "short header" in caplog.text
    assert (tmp_path / LOG_FILE).stat().st_size == size


def test_flipped_byte_in_last_record_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = _write_three(tmp_path)
    data = bytearray((tmp_path / LOG_FILE).read_bytes())
    data[size - 2] ^= 0x40
    (tmp_path / LOG_FILE).write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING), DiskStorage(tmp_path) as s:
        assert s.load().entries == entries(1, 2)
        # The commit index (2) still points inside the surviving log.
        assert s.load().hard_state == HardState(1, None, 2)
    assert "bad CRC" in caplog.text


def test_flipped_byte_mid_log_is_refused_unless_repairing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_three(tmp_path)
    data = bytearray((tmp_path / LOG_FILE).read_bytes())
    data[10] ^= 0x01  # inside the first record's payload; two good records follow
    (tmp_path / LOG_FILE).write_bytes(bytes(data))
    with pytest.raises(StorageCorrupt, match="offset 0"):
        DiskStorage(tmp_path)
    with caplog.at_level(logging.WARNING), DiskStorage(tmp_path, repair=True) as s:
        loaded = s.load()
    assert loaded.entries == ()
    assert loaded.hard_state.commit == 0  # lowered: it pointed past the surviving log
    assert "offset 0" in caplog.text and "lowering" in caplog.text


def test_corrupt_hard_state_is_an_error_not_a_reset(tmp_path: Path) -> None:
    _write_three(tmp_path)
    p = tmp_path / HARD_STATE_FILE
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(StorageCorrupt, match="checksum"):
        DiskStorage(tmp_path)


def test_leftover_tmp_files_are_removed(tmp_path: Path) -> None:
    _write_three(tmp_path)
    (tmp_path / f"{HARD_STATE_FILE}.tmp").write_bytes(b"half")
    with DiskStorage(tmp_path) as s:
        assert s.load().hard_state == HardState(1, None, 2)
    assert not (tmp_path / f"{HARD_STATE_FILE}.tmp").exists()


def test_writes_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    with DiskStorage(tmp_path / "d") as s:
        calls.clear()
        s.append(entries(1, 1))
        assert len(calls) == 1
        calls.clear()
        s.save_hard_state(HardState(1, 1, 1))
        assert len(calls) == 2  # the temporary file, then the directory after the rename
        calls.clear()
        s.truncate_from(1)
        assert len(calls) == 1


def test_persist_writes_in_the_safe_order() -> None:
    order: list[str] = []

    class Recorder(MemoryStorage):
        def save_snapshot(self, snap: Snapshot) -> None:
            order.append("snapshot")

        def truncate_from(self, index: int) -> None:
            order.append("truncate")

        def append(self, entries: tuple[Entry, ...]) -> None:
            order.append("append")

        def save_hard_state(self, hs: HardState) -> None:
            order.append("hardstate")

    rd = Ready(
        hard_state=HardState(1, 1, 1),
        truncate_from=2,
        entries=entries(2, 2),
        snapshot=Snapshot(1, 1, (1,), b""),
        restore_snapshot=True,
        messages=(),
        committed_entries=(),
        soft_state=None,
    )
    persist(Recorder(), rd)
    assert order == ["snapshot", "truncate", "append", "hardstate"]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 4), st.integers(1, 3)),
        st.tuples(st.just("truncate"), st.integers(0, 6), st.just(0)),
        st.tuples(st.just("snapshot"), st.integers(0, 6), st.integers(0, 3)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_disk_storage_matches_the_memory_model(
    tmp_path_factory: pytest.TempPathFactory, script: list[tuple[str, int, int]]
) -> None:
    """Any sequence of writes and reopenings leaves the disk and memory stores equal."""
    path = tmp_path_factory.mktemp("model")
    disk = DiskStorage(path, fsync=False)
    mem = MemoryStorage()
    term = 1
    try:
        for op, a, b in script:
            if op == "append":
                term = max(term, b)
                new = tuple(Entry(mem.last_index + 1 + k, term, data=b"%d" % k) for k in range(a))
                disk.append(new)
                mem.append(new)
            elif op == "truncate":
                index = mem.snap_index + 1 + a
                if index <= mem.last_index:
                    disk.truncate_from(index)
                    mem.truncate_from(index)
            elif op == "snapshot":
                index = mem.snap_index + 1 + a  # the core only ever moves it forward
                t = mem.term(index)
                snap_term = t if (t is not None and b == 0) else term + b
                term = max(term, snap_term)
                snap = Snapshot(index, snap_term, (1, 2, 3), b"s")
                disk.save_snapshot(snap)
                mem.save_snapshot(snap)
            else:
                disk.close()
                disk = DiskStorage(path, fsync=False)
            assert disk.load() == mem.load()
    finally:
        disk.close()
