"""The object metadata of one OSD: an append-only journal plus a snapshot, indexed in memory.

Layout: ``<root>/meta/snapshot.<gen>`` and ``<root>/meta/journal.<gen>`` (``gen`` a
decimal number). Both files start with a 16-byte preamble, magic ``b"RCMETA\\0\\0"``, u32
format (1), u32 zero, followed by records ``u32 body length | u64 xxh3_64(body) | body``
with ``body`` a msgpack :class:`ObjectMeta` (integers little-endian).

The newest version of a name wins, on replay as on commit, so records may arrive in any
order and the journal never needs rewriting in place: a deletion is a record too (a
tombstone) and stays, or a late older copy could bring the object back. A crash can only
tear the journal's tail, so replay stops at the first bad record and cuts the file
there; the snapshot is only ever replaced whole (temp file, fsync, rename), so any damage
in it is real damage and is refused. Compaction writes ``snapshot.<gen+1>`` holding the
index, then an empty ``journal.<gen+1>``, then removes the old generation: a crash at
any step leaves one complete generation to open.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import msgspec
import xxhash

from agent.objects.format import FORMAT, ObjectMeta
from agent.store.errors import CorruptJournal, DiskFull, DiskIOError, StoreError, UnknownFormat
from agent.store.errors import from_os_error as _os_error
from agent.store.identity import write_atomic

__all__ = ["COMPACT_MIN_BYTES", "MAGIC", "MetaJournal"]

MAGIC = b"RCMETA\0\0"
COMPACT_MIN_BYTES = 64 * 1024 * 1024
"""A journal smaller than this is never compacted: replaying it is quick anyway."""
META = "meta"
_PREAMBLE = struct.Struct("<8sII")
_RECORD = struct.Struct("<IQ")
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(ObjectMeta)

Key = tuple[int, str]


class _Peek(msgspec.Struct):
    """Just the format of a record this code cannot decode, to tell newer from damaged."""

    format: int = FORMAT


_peek = msgspec.msgpack.Decoder(_Peek)


def preamble() -> bytes:
    return _PREAMBLE.pack(MAGIC, FORMAT, 0)


def frame(meta: ObjectMeta) -> bytes:
    """One record: length and checksum of the encoded body, then the body."""
    body = _enc.encode(meta)
    return _RECORD.pack(len(body), xxhash.xxh3_64_intdigest(body)) + body


def _merge(index: dict[Key, ObjectMeta], meta: ObjectMeta) -> None:
    key = (meta.pool, meta.name)
    current = index.get(key)
    if current is None or meta.version > current.version:
        index[key] = meta


class MetaJournal:
    """Object metadata of one disk, durable on every :meth:`commit`.

    :meth:`commit` and :meth:`compact` are called by one thread at a time; :meth:`get`,
    :meth:`items` and ``len`` may run concurrently from another thread. They see only
    durable records, each whole (the index's entries are replaced, never edited).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.dir = self.root / META
        self._index: dict[Key, ObjectMeta] = {}
        self._gen = 0
        self._fd = -1
        self._journal_len = 0
        self._snapshot_len = 0
        self._broken = False
        """Set when a failed append could not be undone: commits refused until reopened."""

    # -- lifecycle -------------------------------------------------------------------------
    damaged: int = 0
    """Records skipped at open because they failed their checksum mid-file (bit rot)."""

    def open(self) -> int:
        """Load the snapshot and replay the journal; returns how many records were read.

        A torn or damaged journal tail is cut off (a crash during an append leaves one);
        a damaged snapshot raises :class:`CorruptJournal`.
        """
        self.close()
        try:
            count = self._load()
        except OSError as err:
            raise _os_error(err, disk=self.root, action="load its object metadata") from err
        if self._journal_len > COMPACT_MIN_BYTES and self._journal_len > 2 * self.live_bytes():
            with contextlib.suppress(DiskFull):  # only an optimisation: the next open retries
                self.compact()
        return count

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def size_bytes(self) -> int:
        """Bytes on disk now (journal and snapshot), for usage reports."""
        return self._journal_len + self._snapshot_len

    def live_bytes(self) -> int:
        """Bytes a snapshot of the index would take: what compaction would shrink to."""
        return _PREAMBLE.size + sum(len(frame(m)) for m in self._index.copy().values())

    # -- reads -----------------------------------------------------------------------------
    def get(self, pool: int, name: str) -> ObjectMeta | None:
        """The newest version of the name seen, a tombstone included."""
        return self._index.get((pool, name))

    def items(self, pool: int, prefix: str = "") -> list[ObjectMeta]:
        """The pool's records whose name starts with ``prefix``, by name, tombstones too."""
        found = [
            meta
            for (p, name), meta in self._index.copy().items()
            if p == pool and name.startswith(prefix)
        ]
        return sorted(found, key=lambda meta: meta.name)

    def __len__(self) -> int:
        return len(self._index)

    # -- writes ----------------------------------------------------------------------------
    def commit(self, records: Sequence[ObjectMeta]) -> list[bool]:
        """Durably append the records newer than what is known; returns which were.

        A record no newer than the index, or than an earlier record of the same batch, is
        not written (``False``: the caller answers "superseded"). The newer ones go out in
        one write and one fdatasync, and only then enter the index. On failure the journal
        is cut back to where it was and :class:`DiskFull` or :class:`DiskIOError` raised.
        """
        fd = self._writable()
        pending: dict[Key, ObjectMeta] = {}
        applied: list[bool] = []
        frames: list[bytes] = []
        for meta in records:
            key = (meta.pool, meta.name)
            current = pending[key] if key in pending else self._index.get(key)
            newer = current is None or meta.version > current.version
            applied.append(newer)
            if newer:
                pending[key] = meta
                frames.append(frame(meta))
        if not frames:
            return applied
        buf = memoryview(b"".join(frames))
        try:
            written = 0
            while written < len(buf):
                written += os.write(fd, buf[written:])
            os.fdatasync(fd)
        except OSError as err:
            self._undo(fd, self._journal_len)
            raise _os_error(err, disk=self.root, action="append to its metadata journal") from err
        self._journal_len += len(buf)
        for key, meta in pending.items():
            self._index[key] = meta
        return applied

    def compact(self) -> None:
        """Start a new generation whose snapshot holds the index and whose journal is empty."""
        old_fd = self._writable()
        old, new = self._gen, self._gen + 1
        records = sorted(self._index.copy().items())
        snapshot = preamble() + b"".join(frame(meta) for _, meta in records)
        try:
            write_atomic(self.dir / f"snapshot.{new}", snapshot)
        except OSError as err:
            raise _os_error(err, disk=self.root, action="write a metadata snapshot") from err
        # From here snapshot.<new> is the truth: journal.<old> must take no more records.
        try:
            write_atomic(self._journal_path(new), preamble())
            fd = os.open(self._journal_path(new), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as err:
            self._broken = True
            raise _os_error(err, disk=self.root, action="start a new metadata journal") from err
        os.close(old_fd)
        self._fd, self._gen = fd, new
        self._journal_len, self._snapshot_len = _PREAMBLE.size, len(snapshot)
        for name in (f"snapshot.{old}", f"journal.{old}"):
            with contextlib.suppress(OSError):  # if left, the next open removes it
                (self.dir / name).unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------------------
    def _journal_path(self, gen: int) -> Path:
        return self.dir / f"journal.{gen}"

    def _writable(self) -> int:
        if self._broken:
            raise DiskIOError(
                f"disk {self.root} could not undo a failed metadata append, so its journal "
                "takes no more writes until it is opened again",
                disk=self.root,
            )
        if self._fd < 0:
            raise StoreError(
                f"the metadata journal of disk {self.root} is not open", disk=self.root
            )
        return self._fd

    def _undo(self, fd: int, length: int) -> None:
        """Cut a failed append off, so the next one does not land behind a torn record."""
        try:
            os.ftruncate(fd, length)
        except OSError:
            self._broken = True

    def _generations(self) -> tuple[set[int], set[int]]:
        """Generations of snapshots and journals present; unfinished temp files removed."""
        snapshots: set[int] = set()
        journals: set[int] = set()
        for name in os.listdir(self.dir):
            kind, _, gen = name.partition(".")
            if name.endswith(".tmp"):
                (self.dir / name).unlink()
            elif gen.isdecimal() and kind in ("snapshot", "journal"):
                (snapshots if kind == "snapshot" else journals).add(int(gen))
        return snapshots, journals

    def _load(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        snapshots, journals = self._generations()
        gen = max(snapshots, default=0)
        if any(g > gen for g in journals):
            raise CorruptJournal(
                self._journal_path(max(journals)),
                f"its snapshot is missing, so records before it are lost; newest snapshot "
                f"is generation {gen}",
                disk=self.root,
            )
        index: dict[Key, ObjectMeta] = {}
        count = 0
        snapshot_len = 0
        if gen in snapshots:
            path = self.dir / f"snapshot.{gen}"
            data = path.read_bytes()
            records, _ = self._parse(path, data, strict=True)
            count += len(records)
            for meta in records:
                _merge(index, meta)
            snapshot_len = len(data)
        path = self._journal_path(gen)
        data = path.read_bytes() if gen in journals else b""
        records, end = self._parse(path, data, strict=False)
        count += len(records)
        for meta in records:
            _merge(index, meta)
        if end < _PREAMBLE.size:
            write_atomic(path, preamble())
            end = _PREAMBLE.size
        elif end < len(data):
            os.truncate(path, end)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._index, self._gen, self._fd, self._broken = index, gen, fd, False
        self._journal_len, self._snapshot_len = end, snapshot_len
        os.fsync(fd)  # makes a cut tail durable
        for g in (snapshots | journals) - {gen}:
            for kind in ("snapshot", "journal"):
                (self.dir / f"{kind}.{g}").unlink(missing_ok=True)
        return count

    def _parse(self, path: Path, data: bytes, *, strict: bool) -> tuple[list[ObjectMeta], int]:
        """The records of one file and where the last good one ends.

        ``strict`` (a snapshot): any damage raises. Otherwise (a journal) parsing stops at
        the first damaged record; an end before the preamble means it must be rewritten.
        """
        view = memoryview(data)
        if len(view) < _PREAMBLE.size:
            if strict:
                raise CorruptJournal(path, "it ends inside its preamble", disk=self.root)
            return [], 0
        magic, fmt, pad = _PREAMBLE.unpack_from(view)
        if magic != MAGIC or pad != 0:
            raise CorruptJournal(path, "it does not start with a metadata preamble", disk=self.root)
        if fmt != FORMAT:
            raise self._unknown(path, fmt)
        records: list[ObjectMeta] = []
        pos = _PREAMBLE.size
        while pos < len(view):
            meta, problem, pos_after = self._record(path, view, pos)
            if meta is None:
                if strict:
                    raise CorruptJournal(path, problem, disk=self.root)
                resume = self._resync(path, view, pos)
                if resume is None:
                    break  # a torn tail: the append never finished, nothing was acknowledged
                self.damaged += 1  # bit rot inside: skip the one record, keep the rest
                pos = resume
                continue
            records.append(meta)
            pos = pos_after
        return records, pos

    def _resync(self, path: Path, view: memoryview, pos: int) -> int | None:
        """Where the next good record starts, if a damaged one at ``pos`` is followed by one
        (so it is damage in the middle, not a torn tail); None otherwise."""
        if pos + _RECORD.size > len(view):
            return None
        length, _ = _RECORD.unpack_from(view, pos)
        after = pos + _RECORD.size + length
        if after >= len(view):
            return None
        meta, _, _ = self._record(path, view, after)
        return after if meta is not None else None

    def _record(self, path: Path, view: memoryview, pos: int) -> tuple[ObjectMeta | None, str, int]:
        """The record at ``pos`` and where it ends, or None and what is wrong with it."""
        start = pos + _RECORD.size
        if start > len(view):
            return None, f"the record at byte {pos} is cut short", pos
        length, want = _RECORD.unpack_from(view, pos)
        end = start + length
        if end > len(view):
            return None, f"the record at byte {pos} is cut short", pos
        body = view[start:end]
        if xxhash.xxh3_64_intdigest(body) != want:
            return None, f"the record at byte {pos} fails its checksum", pos
        try:
            meta = _dec.decode(body)
        except msgspec.DecodeError:
            self._check_format(path, body)
            return None, f"the record at byte {pos} cannot be decoded", pos
        if meta.format != FORMAT:
            raise self._unknown(path, meta.format)
        return meta, "", end

    def _check_format(self, path: Path, body: memoryview) -> None:
        try:
            fmt = _peek.decode(body).format
        except msgspec.DecodeError:
            return
        if fmt != FORMAT:
            raise self._unknown(path, fmt)

    def _unknown(self, path: Path, fmt: object) -> UnknownFormat:
        return UnknownFormat(
            f"metadata file {path} has format {fmt}, which this version of Rackcloud does "
            f"not know (it knows {FORMAT})",
            disk=self.root,
        )
