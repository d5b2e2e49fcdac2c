"""Shard files on one disk: written whole or not at all, checked on every read.

Layout under the disk's root: ``incoming/`` holds files being written (whatever is there
at :meth:`ShardStore.open` is an incomplete write from a crash and is removed);
``shards/<ShardId.dir_name()>/<ShardId.file_name()>`` holds finished shards. A shard is
written to ``incoming/``, fsynced, renamed into place and its directory fsynced, so a
crash leaves the old file or the new one, never a torn one under a shard's name.

File format (all integers little-endian)::

    bytes 0-3    magic b"RCSH"
    bytes 4-5    u16 format (1)
    bytes 6-7    u16 zero
    bytes 8-11   u32 header length H
    H bytes      msgpack-encoded ShardHeader
    8 bytes      u64 xxh3_64 of those H header bytes
    then, for each block of header.block_size bytes of shard data (the last block may
    be shorter; zero blocks when shard_len is 0):
    8 bytes      u64 xxh3_64 of the block
    the block

The total size is therefore computable from the header; any other size is corruption.
Per-block checksums let a reader tell damaged bytes from good ones without trusting the
filesystem, and the header names the shard so a misplaced file is caught too.

Synchronous by design: the OSD service calls it from worker threads, several at a time
on different shards.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgspec
import xxhash

from agent.objects.format import CHECKSUM, FORMAT, ShardHeader, ShardId
from agent.store.errors import (
    BadShard,
    CorruptShard,
    DiskFull,
    DiskIOError,
    ShardNotFound,
    StoreError,
    UnknownFormat,
    from_os_error,
)
from agent.store.identity import fsync_dir

__all__ = ["MAGIC", "ShardStore", "file_size"]

MAGIC = b"RCSH"
INCOMING = "incoming"
SHARDS = "shards"
_PREAMBLE = struct.Struct("<4sHHI")
_SUM = struct.Struct("<Q")
_MAX_HEADER = 1 << 20
"""A header is a few hundred bytes; a larger length field is damage, not a header."""
_IOV_MAX = 1024
_HEAD_PROBE = 4096
"""Bytes read first: the preamble, the header and its checksum fit in them."""


@dataclass(frozen=True, slots=True)
class Staged:
    """A shard file written to ``incoming/``, to be renamed to ``final``."""

    tmp: Path
    final: Path
    size: int


_enc = msgspec.msgpack.Encoder()
_header_dec = msgspec.msgpack.Decoder(ShardHeader)


def _blocks(shard_len: int, block_size: int) -> int:
    return -(-shard_len // block_size)


def file_size(header: ShardHeader, header_len: int) -> int:
    """Bytes of a shard file whose encoded header is ``header_len`` bytes long."""
    blocks = _blocks(header.shard_len, header.block_size)
    return _PREAMBLE.size + header_len + _SUM.size + blocks * _SUM.size + header.shard_len


def _write_all(fd: int, bufs: list[memoryview]) -> None:
    """writev ``bufs`` completely: in batches of at most IOV_MAX, resuming short writes."""
    pending = deque(bufs)
    while pending:
        batch = [pending[i] for i in range(min(len(pending), _IOV_MAX))]
        written = os.writev(fd, batch)
        if written == 0:
            raise OSError(5, "the write made no progress")
        while written:
            head = pending[0]
            if written >= len(head):
                written -= len(head)
                pending.popleft()
            else:
                pending[0] = head[written:]
                written = 0


def _request_problem(header: ShardHeader, view: memoryview) -> str:
    """What is wrong with a shard write's header and bytes, or "" when nothing is."""
    if len(view) != header.shard_len:
        return f"{len(view)} bytes of data came with a header saying {header.shard_len}"
    if header.block_size <= 0:
        return f"the header's block size {header.block_size} is not positive"
    if (header.format, header.checksum) != (FORMAT, CHECKSUM):
        return (
            f"the header asks for format {header.format} with {header.checksum} checksums, "
            f"but this disk writes format {FORMAT} with {CHECKSUM}"
        )
    return ""


def _file_buffers(header: ShardHeader, view: memoryview) -> tuple[list[memoryview], int]:
    """The buffers of a shard file (preamble, header, checksummed blocks) and its size."""
    encoded = _enc.encode(header)
    bufs = [
        memoryview(
            _PREAMBLE.pack(MAGIC, FORMAT, 0, len(encoded))
            + encoded
            + _SUM.pack(xxhash.xxh3_64_intdigest(encoded))
        )
    ]
    for start in range(0, len(view), header.block_size):
        block = view[start : start + header.block_size]
        bufs += [memoryview(_SUM.pack(xxhash.xxh3_64_intdigest(block))), block]
    return bufs, file_size(header, len(encoded))


def _scatter(header: ShardHeader) -> tuple[bytearray, bytearray, list[memoryview]]:
    """One buffer for the data, one for the block checksums, and the ``preadv`` list that
    fills them from the file's blocks in order."""
    out = bytearray(header.shard_len)
    blocks = _blocks(header.shard_len, header.block_size)
    sums = bytearray(blocks * _SUM.size)
    data, sv = memoryview(out), memoryview(sums)
    bufs = []
    for i in range(blocks):
        bufs += [
            sv[i * _SUM.size : (i + 1) * _SUM.size],
            data[i * header.block_size :][: header.block_size],
        ]
    return out, sums, bufs


def _read_all(fd: int, bufs: list[memoryview], offset: int) -> None:
    """preadv into ``bufs`` completely from ``offset``, in batches of at most IOV_MAX."""
    pending = deque(bufs)
    while pending:
        batch = [pending[i] for i in range(min(len(pending), _IOV_MAX))]
        got = os.preadv(fd, batch, offset)
        if got == 0:
            raise OSError(5, "the file ended before its last block")
        offset += got
        while got:
            head = pending[0]
            if got >= len(head):
                got -= len(head)
                pending.popleft()
            else:
                pending[0] = head[got:]
                got = 0


class ShardStore:
    """The shard files of one disk; thread-safe for concurrent calls on different shards.

    ``errors`` counts the corrupt files and I/O errors met by any call, for the disk's
    health report; ``reserve_bytes`` is room a write must leave free.
    """

    def __init__(self, root: Path, reserve_bytes: int = 0) -> None:
        self.root = Path(root)
        self.reserve_bytes = reserve_bytes
        self.errors = 0
        self._used = 0
        self._lock = threading.Lock()

    # -- lifecycle and accounting ----------------------------------------------------------
    def open(self) -> int:
        """Create the layout, drop crash leftovers (returns how many), measure usage."""
        try:
            for name in (INCOMING, SHARDS):
                (self.root / name).mkdir(parents=True, exist_ok=True)
            removed = 0
            for entry in os.scandir(self.root / INCOMING):
                os.unlink(entry.path)
                removed += 1
            used = 0
            for group in os.scandir(self.root / SHARDS):
                if group.is_dir(follow_symlinks=False):
                    used += sum(f.stat().st_size for f in os.scandir(group.path))
        except OSError as err:
            raise self._os_error(err, "open its shard store") from err
        with self._lock:
            self._used = used
        return removed

    @property
    def used_bytes(self) -> int:
        return self._used

    def space(self) -> tuple[int, int]:
        """(total, free) bytes of the filesystem; free is what an unprivileged user gets."""
        try:
            st = os.statvfs(self.root)
        except OSError as err:
            raise self._os_error(err, "report its free space") from err
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    # -- shards ----------------------------------------------------------------------------
    def put(self, header: ShardHeader, data: bytes | memoryview) -> None:
        """Store one shard durably; an existing file of the same shard is replaced (a retry)."""
        staged = self.stage(header, data, sync=True)
        self.publish([staged], sync=True)

    def stage(self, header: ShardHeader, data: bytes | memoryview, *, sync: bool) -> Staged:
        """Write the shard's file into ``incoming/`` (fsync'd if ``sync``); not yet visible.

        A batch stages many shards (their fsyncs run at once and share the filesystem's
        journal commits) and then :meth:`publish`es them: one fsync per directory for the
        whole batch, not one per shard.
        """
        view = memoryview(data).cast("B")
        self._check_request(header, view)
        bufs, size = _file_buffers(header, view)
        _, free = self.space()
        if free - size < self.reserve_bytes:
            raise DiskFull(
                f"disk {self.root} is full: {free} bytes free, {self.reserve_bytes} kept in "
                f"reserve, no room for a shard file of {size} bytes",
                disk=self.root,
            )
        final = self._path(header.id)
        tmp = self.root / INCOMING / f"{uuid.uuid4().hex}.tmp"
        try:
            self._write_file(tmp, bufs, sync=sync)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise self._os_error(err, f"write shard file {final}") from err
        return Staged(tmp, final, size)

    def publish(self, staged: Sequence[Staged], *, sync: bool) -> None:
        """Rename staged files into place; durable on return if ``sync`` (each directory
        touched is fsync'd once). Their data must be durable already."""
        try:
            dirs = {self._place(s.tmp, s.final) for s in staged}
            if sync:
                for group in dirs:
                    fsync_dir(group)
        except OSError as err:
            for s in staged:
                with contextlib.suppress(OSError):
                    s.tmp.unlink(missing_ok=True)
            raise self._os_error(err, "put shard files in place") from err

    def get(self, id: ShardId) -> tuple[ShardHeader, bytearray]:
        """The shard's header and data, after every check of the file has passed.

        The blocks are read scattered (``preadv``) straight into one buffer of the shard's
        length and their checksums into another, so the data is copied once, from the
        page cache, and never joined.
        """
        path = self._path(id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            with self._lock:  # the metadata names it, so a missing file is damage
                self.errors += 1
            raise self._missing(id) from None
        except OSError as err:
            raise self._os_error(err, f"read shard file {path}") from err
        try:
            return self._read_checked(path, fd, id)
        except OSError as err:
            raise self._os_error(err, f"read shard file {path}") from err
        finally:
            os.close(fd)

    def _read_checked(self, path: Path, fd: int, id: ShardId) -> tuple[ShardHeader, bytearray]:
        size = os.fstat(fd).st_size
        head = os.pread(fd, min(size, _HEAD_PROBE), 0)
        if len(head) >= _PREAMBLE.size:
            _, _, _, length = _PREAMBLE.unpack_from(head)
            want = _PREAMBLE.size + length + _SUM.size
            if len(head) < want <= size:
                head = os.pread(fd, want, 0)
        header, pos = self._parse_header(path, memoryview(head))
        if header.id != id:
            raise self._corrupt(path, f"it holds {_describe(header.id)}, not {_describe(id)}")
        expected = file_size(header, pos - _PREAMBLE.size - _SUM.size)
        if size != expected:
            raise self._corrupt(path, f"it is {size} bytes long, not {expected}")
        out, sums, bufs = _scatter(header)
        _read_all(fd, bufs, pos)
        data = memoryview(out)
        blocks = len(sums) // _SUM.size
        for i in range(blocks):
            (want_sum,) = _SUM.unpack_from(sums, i * _SUM.size)
            block = data[i * header.block_size :][: header.block_size]
            if xxhash.xxh3_64_intdigest(block) != want_sum:
                raise self._corrupt(path, f"block {i} fails its checksum")
        return header, out

    def delete(self, id: ShardId) -> bool:
        """Remove the shard's file; False if there was none."""
        path = self._path(id)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as err:
            raise self._os_error(err, f"delete shard file {path}") from err
        with self._lock:
            self._used -= size
        return True

    def scan(self) -> Iterator[tuple[ShardHeader, float]]:
        """Every shard's header and file mtime, for the garbage collector.

        Reads only headers. A file whose header fails its checks, or that is not where its
        header says it belongs, is skipped and counted in ``errors``: the collector must
        never act on a header it cannot trust. A file of an unknown format is skipped.
        """
        try:
            groups = sorted(e.path for e in os.scandir(self.root / SHARDS) if e.is_dir())
        except OSError as err:
            raise self._os_error(err, "list its shards") from err
        for group in groups:
            try:
                names = sorted(os.listdir(group))
            except FileNotFoundError:
                continue
            except OSError as err:
                raise self._os_error(err, f"list its shards in {group}") from err
            for name in names:
                found = self._scan_one(Path(group) / name)
                if found is not None:
                    yield found

    # -- internals -------------------------------------------------------------------------
    def _path(self, id: ShardId) -> Path:
        return self.root / SHARDS / id.dir_name() / id.file_name()

    def _check_request(self, header: ShardHeader, view: memoryview) -> None:
        problem = _request_problem(header, view)
        if problem:
            raise BadShard(
                f"disk {self.root} refused {_describe(header.id)}: {problem}", disk=self.root
            )

    def _write_file(self, tmp: Path, bufs: list[memoryview], *, sync: bool) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, bufs)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _place(self, tmp: Path, final: Path) -> Path:
        """Rename ``tmp`` to ``final`` (counting its bytes); returns its directory."""
        group = final.parent
        if not group.is_dir():
            # Another thread may make it first; either way its entry must be durable.
            group.mkdir(exist_ok=True)
            fsync_dir(group.parent)
        try:
            old = final.stat().st_size
        except FileNotFoundError:
            old = 0
        size = tmp.stat().st_size
        os.rename(tmp, final)
        with self._lock:
            self._used += size - old
        return group

    def _scan_one(self, path: Path) -> tuple[ShardHeader, float] | None:
        try:
            with open(path, "rb") as f:
                mtime = os.fstat(f.fileno()).st_mtime
                header, _ = self._read_header(path, f)
        except FileNotFoundError:
            return None  # deleted while we looked
        except StoreError:
            return None  # damage was counted; an unknown format is a newer node's, left alone
        except OSError:
            with self._lock:
                self.errors += 1
            return None
        if self._path(header.id) != path:
            with self._lock:
                self.errors += 1
            return None
        return header, mtime

    def _read_header(self, path: Path, f: BinaryIO) -> tuple[ShardHeader, int]:
        first = f.read(_PREAMBLE.size)
        length = self._check_preamble(path, memoryview(first))
        return self._parse_header(path, memoryview(first + f.read(length + _SUM.size)))

    def _check_preamble(self, path: Path, data: memoryview) -> int:
        """The header length the preamble gives, after checking magic, format and padding."""
        if len(data) < _PREAMBLE.size:
            raise self._corrupt(path, f"it is only {len(data)} bytes long")
        magic, fmt, pad, length = _PREAMBLE.unpack_from(data)
        if magic != MAGIC:
            raise self._corrupt(path, f"it starts with {bytes(magic)!r}, not {MAGIC!r}")
        if fmt != FORMAT:
            raise UnknownFormat(
                f"shard file {path} has format {fmt}, which this version of Rackcloud does "
                f"not know (it knows {FORMAT})",
                disk=self.root,
            )
        if pad != 0 or length > _MAX_HEADER:
            raise self._corrupt(path, "its preamble is garbled")
        return int(length)

    def _parse_header(self, path: Path, data: memoryview) -> tuple[ShardHeader, int]:
        """The header at the start of ``data`` and the offset of the first block."""
        length = self._check_preamble(path, data)
        end = _PREAMBLE.size + length
        if len(data) < end + _SUM.size:
            raise self._corrupt(path, "it ends inside its header")
        body = data[_PREAMBLE.size : end]
        (want,) = _SUM.unpack_from(data, end)
        if xxhash.xxh3_64_intdigest(body) != want:
            raise self._corrupt(path, "its header fails its checksum")
        try:
            header = _header_dec.decode(body)
        except msgspec.DecodeError:
            raise self._corrupt(path, "its header cannot be decoded") from None
        if (header.format, header.checksum) != (FORMAT, CHECKSUM):
            raise UnknownFormat(
                f"shard file {path} has header format {header.format} with "
                f"{header.checksum} checksums, which this version of Rackcloud does not know",
                disk=self.root,
            )
        if header.block_size <= 0 or header.shard_len < 0:
            raise self._corrupt(path, "its header gives impossible lengths")
        return header, end + _SUM.size

    def _corrupt(self, path: Path, problem: str) -> CorruptShard:
        """The error for a damaged file, counted in ``errors`` as it is made."""
        with self._lock:
            self.errors += 1
        return CorruptShard(path, problem, disk=self.root)

    def _missing(self, id: ShardId) -> ShardNotFound:
        return ShardNotFound(f"disk {self.root} has no file for {_describe(id)}", disk=self.root)

    def _os_error(self, err: OSError, action: str) -> StoreError:
        mapped = from_os_error(err, disk=self.root, action=action)
        if isinstance(mapped, DiskIOError):
            with self._lock:
                self.errors += 1
        return mapped


def _describe(id: ShardId) -> str:
    return (
        f"shard {id.position} of chunk {id.chunk} of object {id.object!r} in pool "
        f"{id.pool}, version {id.version.hex()}"
    )
