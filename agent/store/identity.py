"""Which disk this is: the identity file that stops a swapped or copied disk being used.

A disk directory holds ``RACKCLOUD-DISK.json`` naming the cluster, the node and the
configured path it was claimed for. An agent uses a directory only if that file names
itself and that path, so a disk moved to another slot or another server, or a directory
copied from another node, is refused instead of serving shards that belong elsewhere.

Also home of the small durable-file helpers the store's modules share.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import msgspec

from agent.objects.format import FORMAT
from agent.store.errors import ForeignDisk, UnknownFormat, from_os_error

__all__ = ["IDENTITY_FILE", "DiskIdentity", "claim", "fsync_dir", "write_atomic"]

IDENTITY_FILE = "RACKCLOUD-DISK.json"
_TMP_SUFFIX = ".tmp"
_IGNORED = frozenset({"lost+found", IDENTITY_FILE + _TMP_SUFFIX})
"""Entries an empty disk may hold: mkfs's directory and our own unfinished claim."""


class DiskIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Whose disk this is; written once when the disk is claimed, never changed."""

    format: int
    cluster: str
    node: str
    disk: str
    """The configured absolute path, so a disk moved to another slot is noticed."""
    uuid: str
    created_at: float


def fsync_dir(path: Path) -> None:
    """Make a rename or creation in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` by ``data`` so a crash leaves the old file or the new, never half.

    Temp file beside it, fsync, rename, fsync of the directory; the temp file is removed
    if anything fails, and the ``OSError`` propagates.
    """
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def claim(root: Path, *, cluster: str, node: str, wall: float) -> DiskIdentity:
    """The identity of disk ``root``, claiming it for this node if it is empty.

    Raises :class:`ForeignDisk` if the disk belongs to another cluster, node or path, or
    holds files but no identity; :class:`UnknownFormat` if a newer version claimed it.
    """
    disk = os.path.abspath(root)
    path = Path(disk)
    try:
        if not path.exists():
            path.mkdir(parents=True)
            fsync_dir(path.parent)
        if not path.is_dir():
            raise ForeignDisk(
                f"disk {disk} is not a directory; point the config at a directory", disk=disk
            )
        ident = _read(path / IDENTITY_FILE, disk)
        if ident is None:
            return _claim_empty(path, cluster=cluster, node=node, wall=wall)
    except OSError as err:
        raise from_os_error(err, disk=disk, action="read or write its identity") from err
    if (ident.cluster, ident.node, ident.disk) != (cluster, node, disk):
        raise ForeignDisk(
            f"disk {disk} belongs to node {ident.node}'s disk {ident.disk} of cluster "
            f"{ident.cluster}, not to node {node}'s disk {disk} of cluster {cluster}: it "
            "was swapped or copied, so it is refused",
            disk=disk,
        )
    return ident


def _read(file: Path, disk: str) -> DiskIdentity | None:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError:
        raw = None
    fmt = raw.get("format") if isinstance(raw, dict) else None
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt != FORMAT:
        raise UnknownFormat(
            f"disk {disk} was claimed with identity format {fmt}, which this version of "
            f"Rackcloud does not know (it knows {FORMAT}); upgrade this node",
            disk=disk,
        )
    try:
        return msgspec.convert(raw, DiskIdentity)
    except msgspec.ValidationError:
        raise ForeignDisk(
            f"disk {disk} has an identity file {file} that cannot be read, so it is not "
            "used; restore the file or empty the directory to claim the disk anew",
            disk=disk,
        ) from None


def _claim_empty(root: Path, *, cluster: str, node: str, wall: float) -> DiskIdentity:
    disk = str(root)
    if any(entry not in _IGNORED for entry in os.listdir(root)):
        raise ForeignDisk(
            f"disk {disk} holds files but no rackcloud identity, so it is not used; empty "
            "it or point the config at another directory",
            disk=disk,
        )
    ident = DiskIdentity(
        format=FORMAT,
        cluster=cluster,
        node=node,
        disk=disk,
        uuid=str(uuid.uuid4()),
        created_at=wall,
    )
    write_atomic(root / IDENTITY_FILE, msgspec.json.encode(ident) + b"\n")
    return ident
