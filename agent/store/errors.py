"""Named errors of an OSD's disk store.

Every error carries ``disk``, the configured path of the disk it is about, so the agent
can mark that one disk failed and keep serving from the others; ``str(err)`` is one plain
sentence naming that path. :func:`from_os_error` is the one place an ``OSError`` becomes
a store error, so "the disk is full" and "the disk is failing" are told apart the same
way by every module.
"""

from __future__ import annotations

import errno
from pathlib import Path

from agent.errors import BadRequest, DataCorrupt, NotFound, OutOfSpace, RackError, StorageFault

__all__ = [
    "BadShard",
    "CorruptJournal",
    "CorruptShard",
    "DiskFull",
    "DiskIOError",
    "ForeignDisk",
    "ShardNotFound",
    "StoreError",
    "UnknownFormat",
    "from_os_error",
]

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class StoreError(RackError):
    """Base of every disk-store error; ``disk`` is the configured path of the disk."""

    def __init__(self, message: str, *, disk: Path | str) -> None:
        super().__init__(message)
        self.disk = str(disk)


class DiskFull(StoreError, OutOfSpace):
    """The disk has no room (ENOSPC, a quota) or would drop under its reserve."""


class DiskIOError(StoreError, StorageFault):
    """Reading or writing failed (EIO, say): the disk may be failing."""


class CorruptShard(StoreError, DataCorrupt):
    """A shard file fails a check (checksum, length, header): its bytes cannot be trusted."""

    def __init__(self, file: Path, problem: str, *, disk: Path | str) -> None:
        super().__init__(f"shard file {file} is damaged: {problem}", disk=disk)
        self.file = str(file)


class CorruptJournal(StoreError, StorageFault):
    """A metadata snapshot or journal is damaged where no crash could have torn it."""

    def __init__(self, file: Path, problem: str, *, disk: Path | str) -> None:
        super().__init__(f"metadata file {file} is damaged: {problem}", disk=disk)
        self.file = str(file)


class ShardNotFound(StoreError, NotFound):
    """The disk holds no file for this shard."""


class BadShard(StoreError, BadRequest):
    """A write request's data does not match its own header; nothing was written."""


class ForeignDisk(StoreError, StorageFault):
    """The directory is another node's disk, or holds files that are not a Rackcloud disk."""


class UnknownFormat(StoreError, StorageFault):
    """A file says it has a format number this code does not know (a newer version wrote it)."""


def from_os_error(err: OSError, *, disk: Path | str, action: str) -> StoreError:
    """``DiskFull`` for ENOSPC and EDQUOT, ``DiskIOError`` for the rest; ``action`` is
    what failed, in words ("write shard x", say)."""
    if err.errno in _FULL:
        return DiskFull(f"disk {disk} is full, so it could not {action}", disk=disk)
    reason = err.strerror or type(err).__name__
    return DiskIOError(f"disk {disk} could not {action}: {reason}", disk=disk)
