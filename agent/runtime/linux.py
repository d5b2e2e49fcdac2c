"""The Linux calls the runtime needs and Python 3.11 lacks, by ctypes on the C library.

``os.unshare`` and ``os.setns`` arrive only in Python 3.12, and ``mount``, ``sethostname``
and ``prctl`` have no wrapper at all. This module imports nothing but the standard library
and nothing from the package: the launcher (``launch.py``) loads it as a top-level module
so that a container starts without importing ``agent``. Every call raises ``OSError`` with
the errno of the failed call, like the ``os`` functions do.
"""

from __future__ import annotations

import ctypes
import os

__all__ = [
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUTS",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_REC",
    "mount",
    "set_parent_death_signal",
    "sethostname",
    "setns",
    "unshare",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 0x40000

_PR_SET_PDEATHSIG = 1

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    """The C library, loaded on first use (the agent may never start a container)."""
    global _libc  # noqa: PLW0603 -- one handle per process, loaded lazily
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, call: str, detail: str = "") -> None:
    if result == -1:
        errno = ctypes.get_errno()
        where = f"{call} {detail}".strip()
        raise OSError(errno, f"{where}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``CLONE_NEW*`` flags).

    A new pid namespace applies to the children forked afterwards, not to the caller.
    """
    _check(_lib().unshare(ctypes.c_int(flags)), "unshare")


def setns(target: int | str | os.PathLike[str], nstype: int = 0) -> None:
    """Join the namespace ``target`` (an open fd or a path such as ``/proc/PID/ns/net``).

    ``nstype`` (a ``CLONE_NEW*`` flag, or 0 for any) makes the kernel refuse a namespace
    of another kind, so a wrong path cannot silently join the wrong namespace.
    """
    if isinstance(target, int):
        _check(_lib().setns(ctypes.c_int(target), ctypes.c_int(nstype)), "setns")
        return
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_lib().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", os.fspath(target))
    finally:
        os.close(fd)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    """mount(2); ``mount(None, "/", None, MS_REC | MS_PRIVATE)`` changes propagation only."""

    def arg(value: str | None) -> bytes | None:
        return None if value is None else os.fsencode(value)

    result = _lib().mount(arg(source), arg(target), arg(fstype), ctypes.c_ulong(flags), arg(data))
    _check(result, "mount", target)


def sethostname(name: str) -> None:
    """Set the host name of the calling process's UTS namespace."""
    raw = name.encode()
    _check(_lib().sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def set_parent_death_signal(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when the thread that forked it dies."""
    zero = ctypes.c_ulong(0)
    result = _lib().prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signum), zero, zero, zero)
    _check(result, "prctl")
