"""On-disk Raft state: an append-only log file plus atomically replaced hard-state and
snapshot files. The only module of :mod:`agent.raft` that does I/O.

Every file is a sequence of records ``u32 length | u32 crc32(payload) | payload``
(little-endian; payload is msgpack). ``log`` holds one :class:`Entry` per record;
``hardstate`` and ``snapshot`` hold exactly one record each and are only ever replaced by
tmp -> fsync -> rename -> fsync(dir), so they are whole or absent. A crash while appending
can leave a torn last record in ``log``: on open it is detected (short record, bad CRC,
undecodable or out-of-sequence entry), logged with file and offset, and cut off - never
applied. Damage with intact-looking data after it is refused unless ``repair=True``.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import TypeVar

import msgspec

from agent.raft.errors import StorageCorrupt
from agent.raft.messages import Entry, HardState, PersistentState, Snapshot

__all__ = ["DiskStorage"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_enc = msgspec.msgpack.Encoder()
_entry_dec = msgspec.msgpack.Decoder(Entry)
_hs_dec = msgspec.msgpack.Decoder(HardState)
_snap_dec = msgspec.msgpack.Decoder(Snapshot)

LOG_FILE = "log"
HARD_STATE_FILE = "hardstate"
SNAPSHOT_FILE = "snapshot"

T = TypeVar("T")


def frame(payload: bytes) -> bytes:
    """One record: length, CRC32 of the payload, payload."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class DiskStorage:
    """Persisted state of one node in directory ``path``; each write is durable on return.

    ``fsync=False`` skips the fsyncs (tests and simulations only: a power cut would then
    lose acknowledged writes). A damaged record that is not at the tail (more data follows
    it, and not just zeros) raises :class:`StorageCorrupt` unless ``repair=True``, because
    cutting the log there could drop entries this node already acknowledged.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, fsync: bool = True, repair: bool = False
    ) -> None:
        self.path = Path(path)
        self._sync = fsync
        self._repair = repair
        if not self.path.is_dir():
            self.path.mkdir(parents=True)
            self._fsync_dir(self.path.parent)
        for tmp in self.path.glob("*.tmp"):
            log.info("raft storage %s: removing unfinished %s", self.path, tmp.name)
            tmp.unlink()
        self._hard_state = self._read_single(HARD_STATE_FILE, _hs_dec) or HardState()
        self._snapshot = self._read_single(SNAPSHOT_FILE, _snap_dec)
        self._entries: list[Entry] = []
        self._offsets: list[int] = []
        self._size = 0
        self._read_log()
        self._fix_log_start()
        last = self._last_index()
        if self._hard_state.commit > last:
            log.warning(
                "raft storage %s: commit %d is past the last entry %d; lowering it",
                self.path / HARD_STATE_FILE,
                self._hard_state.commit,
                last,
            )
            self._hard_state = HardState(self._hard_state.term, self._hard_state.vote, last)
        self._log_f = open(self.path / LOG_FILE, "ab")  # noqa: SIM115 - held until close()

    # -- LogStore --------------------------------------------------------------------------
    def load(self) -> PersistentState:
        return PersistentState(self._hard_state, self._snapshot, tuple(self._entries))

    def append(self, entries: tuple[Entry, ...]) -> None:
        if not entries:
            return
        buf = bytearray()
        offsets = []
        nxt = self._last_index() + 1
        for e in entries:
            if e.index != nxt:
                raise ValueError(f"append of entry {e.index}, expected {nxt}")
            nxt += 1
            offsets.append(self._size + len(buf))
            buf += frame(_enc.encode(e))
        self._log_f.write(buf)
        self._log_f.flush()
        self._fsync(self._log_f.fileno())
        self._entries.extend(entries)
        self._offsets.extend(offsets)
        self._size += len(buf)

    def truncate_from(self, index: int) -> None:
        first = self._first_index()
        if index > self._last_index():
            return
        if index < first:
            raise ValueError(f"truncate at {index} reaches into the snapshot (first {first})")
        off = index - first
        self._cut(self._offsets[off])
        del self._entries[off:]
        del self._offsets[off:]

    def save_hard_state(self, hs: HardState) -> None:
        self._atomic_write(HARD_STATE_FILE, frame(_enc.encode(hs)))
        self._hard_state = hs

    def save_snapshot(self, snap: Snapshot) -> None:
        self._atomic_write(SNAPSHOT_FILE, frame(_enc.encode(snap)))
        self._snapshot = snap
        self._fix_log_start()

    def close(self) -> None:
        self._log_f.close()

    def __enter__(self) -> DiskStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------
    def _snap_index(self) -> int:
        return self._snapshot.index if self._snapshot else 0

    def _first_index(self) -> int:
        return self._entries[0].index if self._entries else self._snap_index() + 1

    def _last_index(self) -> int:
        return self._entries[-1].index if self._entries else self._snap_index()

    def _read_single(self, name: str, dec: msgspec.msgpack.Decoder[T]) -> T | None:
        p = self.path / name
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) < _HEADER.size:
            raise StorageCorrupt(f"the Raft file {p} is truncated")
        length, crc = _HEADER.unpack_from(data)
        payload = data[_HEADER.size : _HEADER.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            raise StorageCorrupt(f"the Raft file {p} fails its checksum")
        try:
            return dec.decode(payload)
        except msgspec.DecodeError as exc:
            raise StorageCorrupt(f"the Raft file {p} cannot be decoded") from exc

    def _read_log(self) -> None:
        p = self.path / LOG_FILE
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return
        pos = 0
        problem = ""
        end = 0
        while pos < len(data):
            if len(data) - pos < _HEADER.size:
                problem = "short header"
                end = len(data)
                break
            length, crc = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + length
            if end > len(data):
                problem = "short record"
                break
            payload = data[pos + _HEADER.size : end]
            if zlib.crc32(payload) != crc:
                problem = "bad CRC"
                break
            try:
                e = _entry_dec.decode(payload)
            except msgspec.DecodeError:
                problem = "undecodable entry"
                break
            if self._entries and e.index != self._entries[-1].index + 1:
                problem = f"entry {e.index} out of sequence"
                break
            self._entries.append(e)
            self._offsets.append(pos)
            pos = end
        self._size = pos
        damaged = problem and end < len(data) and data.count(0, end) != len(data) - end
        if damaged and not self._repair:
            # Valid-looking data follows the bad record: this is not a torn append but
            # damage inside the log, and cutting here would drop acknowledged entries.
            raise StorageCorrupt(
                f"the Raft log {p} is damaged at offset {pos} ({problem}) with "
                f"{len(data) - end} bytes after it; open it with repair=True to cut it there"
            )
        if problem:
            log.warning(
                "raft log %s: %s at offset %d; truncating %d trailing bytes",
                p,
                problem,
                pos,
                len(data) - pos,
            )
            with open(p, "r+b") as f:
                f.truncate(pos)
                f.flush()
                self._fsync(f.fileno())

    def _fix_log_start(self) -> None:
        """Make the log start right after the snapshot (or at 1), dropping what it covers
        and, if the log does not connect to it, what follows too."""
        snap = self._snapshot
        if not self._entries:
            return
        first = self._entries[0].index
        if snap is None:
            if first != 1:
                self._rewrite_from(len(self._entries), f"log starts at {first}, not 1")
            return
        if first == snap.index + 1:
            return
        off = snap.index - first
        if 0 <= off < len(self._entries) and self._entries[off].term == snap.term:
            self._rewrite_from(off + 1, "")
        else:
            self._rewrite_from(len(self._entries), f"log does not connect to snapshot {snap.index}")

    def _rewrite_from(self, keep: int, why: str) -> None:
        """Atomically replace the log file by its records from position ``keep`` on."""
        p = self.path / LOG_FILE
        if why:
            log.warning("raft log %s: %s; dropping %d entries", p, why, keep)
        start = self._offsets[keep] if keep < len(self._offsets) else self._size
        with open(p, "rb") as f:
            f.seek(start)
            rest = f.read(self._size - start)
        reopen = hasattr(self, "_log_f")
        if reopen:
            self._log_f.close()
        self._atomic_write(LOG_FILE, rest)
        self._entries = self._entries[keep:]
        self._offsets = [o - start for o in self._offsets[keep:]]
        self._size = len(rest)
        if reopen:
            self._log_f = open(p, "ab")  # noqa: SIM115

    def _cut(self, offset: int) -> None:
        self._log_f.flush()
        os.truncate(self.path / LOG_FILE, offset)
        if self._sync:
            fd = os.open(self.path / LOG_FILE, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._size = offset

    def _atomic_write(self, name: str, data: bytes) -> None:
        tmp = self.path / f"{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            self._fsync(f.fileno())
        os.replace(tmp, self.path / name)
        self._fsync_dir(self.path)

    def _fsync(self, fd: int) -> None:
        if self._sync:
            os.fsync(fd)

    def _fsync_dir(self, path: Path) -> None:
        if not self._sync:
            return
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
