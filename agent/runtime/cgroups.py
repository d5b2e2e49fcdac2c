"""The cgroups of containers, on pure cgroup v2 and on the hybrid v1 + v2 layout.

A container's cgroup is ``rackcloud/<scope>/<name>-g<generation>`` in every hierarchy used:

- in the cgroup2 hierarchy, under its root: there ``cgroup.kill`` (Linux 5.14) kills the
  whole tree at once, including processes that left the session (``setsid``), and
  ``cgroup.events`` tells when it is empty. On pure v2 the limits go there too
  (``memory.max``, ``cpu.max``), after the controllers are enabled in the parents'
  ``cgroup.subtree_control``;
- on the hybrid layout the memory and cpu controllers are bound to v1 hierarchies, so
  the limits go to ``memory/`` and ``cpu/`` (or ``cpu,cpuacct/``) — under the agent's
  own cgroup of that hierarchy, so containers stay inside whatever limit the agent was
  itself placed in (on a plain host that is the hierarchy's root).

The scope (``<cluster>-<node>``) keeps apart the lab nodes that share one machine, and
lets an agent that restarts after a crash find and remove what it left
(:func:`cleanup_scope`). Synchronous file I/O on cgroupfs, which never blocks on a disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import signal
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TOP", "Cgroup", "Layout", "cleanup_scope", "create", "probe"]

TOP = "rackcloud"
LIMITED = ("memory", "cpu")  # the controllers a RunSpec can limit
CPU_PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel refuses a smaller cfs quota
_KILL_ROUNDS = 100


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the cgroups of this machine are and which controllers can be used.

    ``v1`` maps a controller to the agent's own cgroup directory in that v1 hierarchy; it
    holds only the controllers that are not available in v2.
    """

    v2: Path | None
    v2_controllers: frozenset[str] = frozenset()
    v1: Mapping[str, Path] = field(default_factory=dict)
    hybrid: bool = False

    def place(self, controller: str) -> str | None:
        """``"v2"``, ``"v1"`` or None: where the limit of ``controller`` is written."""
        if self.v2 is not None and controller in self.v2_controllers:
            return "v2"
        return "v1" if controller in self.v1 else None

    def bases(self) -> list[Path]:
        """The directories under which ``rackcloud/`` lives, v2 first."""
        found = [] if self.v2 is None else [self.v2]
        return found + [base for base in dict.fromkeys(self.v1.values()) if base not in found]

    def describe(self) -> str:
        """For the log: "cgroup2(hybrid)+v1 memory,cpu" here, "cgroup2 memory,cpu" on pure v2."""
        v2 = [c for c in LIMITED if self.place(c) == "v2"]
        v1 = [c for c in LIMITED if self.place(c) == "v1"]
        parts = []
        if self.v2 is not None:
            parts.append(("cgroup2(hybrid)" if self.hybrid else "cgroup2") + _listed(v2))
        if v1:
            parts.append("v1" + _listed(v1))
        text = "+".join(parts)
        missing = [c for c in LIMITED if self.place(c) is None]
        return text + (f" (no {' or '.join(missing)} limits)" if missing else "")


def _listed(controllers: list[str]) -> str:
    return " " + ",".join(controllers) if controllers else ""


def _unescape(text: str) -> str:
    r"""Mount points in mountinfo escape space, tab, newline and backslash as ``\ooo``."""
    for code in ("040", "011", "012", "134"):
        text = text.replace("\\" + code, chr(int(code, 8)))
    return text


def parse_mountinfo(text: str) -> tuple[Path | None, dict[str, tuple[Path, str]]]:
    """The cgroup2 mount point, and each v1 controller's (mount point, mounted root)."""
    v2: Path | None = None
    v1: dict[str, tuple[Path, str]] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        root, mountpoint = _unescape(fields[3]), Path(_unescape(fields[4]))
        if tail[0] == "cgroup2" and v2 is None:
            v2 = mountpoint
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                if "=" not in option and option not in ("rw", "ro"):
                    v1.setdefault(option, (mountpoint, root))
    return v2, v1


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Each v1 controller's cgroup path of the process (``/proc/PID/cgroup``); ``""`` is v2."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                found.setdefault(controller, parts[2])
    return found


def probe(*, mountinfo: str | None = None, proc_cgroup: str | None = None) -> Layout | None:
    """The cgroup layout this process can use, or None when it can use none (not root, say).

    Reads ``/proc/self/mountinfo`` and ``/proc/self/cgroup`` unless given their text.
    """
    try:
        if mountinfo is None:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        if proc_cgroup is None:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    v2_mount, v1_mounts = parse_mountinfo(mountinfo)
    own = parse_proc_cgroup(proc_cgroup)
    v2 = v2_mount if v2_mount is not None and os.access(v2_mount, os.W_OK) else None
    v2_controllers: frozenset[str] = frozenset()
    if v2 is not None:
        with contextlib.suppress(OSError):
            v2_controllers = frozenset((v2 / "cgroup.controllers").read_text().split())
    v1: dict[str, Path] = {}
    for controller in LIMITED:
        if controller in v2_controllers or controller not in v1_mounts or controller not in own:
            continue
        mountpoint, root = v1_mounts[controller]
        relative = posixpath.relpath(own[controller], root).lstrip("./")
        base = mountpoint / relative if relative else mountpoint
        if base.is_dir() and os.access(base, os.W_OK):
            v1[controller] = base
    if v2 is None and not v1:
        return None
    return Layout(v2=v2, v2_controllers=v2_controllers, v1=v1, hybrid=bool(v1_mounts))


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


@dataclass(frozen=True, slots=True)
class Cgroup:
    """One container's cgroup: its v2 directory and its v1 ones, made and removed together."""

    v2: Path | None
    v1: tuple[Path, ...] = ()

    @property
    def dirs(self) -> tuple[Path, ...]:
        return (() if self.v2 is None else (self.v2,)) + self.v1

    @property
    def primary(self) -> Path:
        """The directory whose processes are the container's: v2 when there is one."""
        return self.dirs[0]

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid to, to join (v2 first)."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> list[int]:
        """Every process of the tree (the cgroup and any cgroups below it)."""
        return [int(pid) for d in _walk(self.primary) for pid in _read(d / "cgroup.procs").split()]

    def populated(self) -> bool:
        if self.v2 is not None:
            return "populated 1" in _read(self.v2 / "cgroup.events")
        return bool(self.pids())

    def signal(self, signum: int, skip: Iterable[int] = ()) -> None:
        """Send ``signum`` to every process of the tree but ``skip``."""
        skipped = set(skip)
        for pid in self.pids():
            if pid not in skipped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    def kill(self, *, use_kill_file: bool = True) -> None:
        """SIGKILL the whole tree now: ``cgroup.kill``, else freeze and kill every pid.

        Without ``cgroup.kill`` (Linux < 5.14, or pure v1) the pids are killed in rounds
        until a round finds none it had not killed: a process with SIGKILL pending can no
        longer fork, so a child forked meanwhile shows up in the next round.
        """
        if self.v2 is not None and use_kill_file and (self.v2 / "cgroup.kill").exists():
            try:
                _write(self.v2 / "cgroup.kill", "1")
                return
            except FileNotFoundError:
                return  # removed: nothing is left to kill
            except OSError:
                pass  # fall back on killing each pid
        freeze = None if self.v2 is None else self.v2 / "cgroup.freeze"
        if freeze is not None and not freeze.exists():
            freeze = None
        if freeze is not None:
            with contextlib.suppress(OSError):
                _write(freeze, "1")
        try:
            killed: set[int] = set()
            for _ in range(_KILL_ROUNDS):
                fresh = set(self.pids()) - killed
                if not fresh:
                    break
                for pid in fresh:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                killed |= fresh
        finally:
            if freeze is not None:
                with contextlib.suppress(OSError):
                    _write(freeze, "0")  # a frozen v2 task still dies of SIGKILL; thaw anyway

    def remove(self) -> bool:
        """Remove the directories (innermost first) once the tree is empty; one attempt.

        Returns whether they are all gone; a busy one (a process not yet dead) stays, for
        the caller to retry. The scope directory goes too when it became empty.
        """
        gone = all([_rmdir_tree(d) for d in self.dirs])
        for d in self.dirs:
            with contextlib.suppress(OSError):
                os.rmdir(d.parent)  # the scope, once its last container is gone
        return gone


def _walk(top: Path) -> Iterator[Path]:
    """``top`` and every cgroup below it, innermost last."""
    yield top
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(top):
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(Path(entry.path))


def _rmdir_tree(top: Path) -> bool:
    for d in reversed(list(_walk(top))):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as err:
            if err.errno in (errno.EBUSY, errno.ENOTEMPTY):
                return False
            raise
    return True


def _mkdirs(path: Path) -> None:
    """Make ``path`` and its parents; a parent removed meanwhile (the last container of the
    scope stopping) is made again."""
    for attempt in range(5):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise


def _enable(root: Path, leaf_parent: Path, controllers: Iterable[str]) -> None:
    """Enable ``controllers`` in ``cgroup.subtree_control`` of every cgroup from the root
    down to the leaf's parent, so the leaf gets their files (``memory.max``, ...)."""
    wanted = list(controllers)
    chain = [root]
    for part in leaf_parent.relative_to(root).parts:
        chain.append(chain[-1] / part)
    for d in chain:
        enabled = set(_read(d / "cgroup.subtree_control").split())
        missing = [c for c in wanted if c not in enabled]
        if missing:
            _write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def _cgroup_of(layout: Layout, scope: str, leaf: str) -> Cgroup:
    return Cgroup(
        v2=None if layout.v2 is None else layout.v2 / TOP / scope / leaf,
        v1=tuple(dict.fromkeys(base / TOP / scope / leaf for base in layout.v1.values())),
    )


def create(
    layout: Layout, scope: str, leaf: str, *, memory_bytes: int = 0, cpu_millis: int = 0
) -> Cgroup:
    """Make the cgroup ``rackcloud/<scope>/<leaf>`` in each hierarchy and set its limits.

    Raises ``OSError`` (with the file name) when the kernel refuses, and ``FileExistsError``
    when the cgroup exists and still holds processes: the same generation of a container
    must never run twice. An empty leftover is removed and made afresh, so no old limit
    stays.
    """
    v1_dirs = {c: base / TOP / scope / leaf for c, base in layout.v1.items()}
    cgroup = _cgroup_of(layout, scope, leaf)
    if any(d.is_dir() for d in cgroup.dirs):
        if cgroup.populated():
            raise FileExistsError(errno.EEXIST, "it still holds processes", str(cgroup.primary))
        cgroup.remove()
    for d in cgroup.dirs:
        _mkdirs(d)
    limited = [c for c, n in (("memory", memory_bytes), ("cpu", cpu_millis)) if n > 0]
    if layout.v2 is not None and cgroup.v2 is not None:
        on_v2 = [c for c in limited if layout.place(c) == "v2"]
        if on_v2:
            _enable(layout.v2, cgroup.v2.parent, on_v2)
    quota = max(MIN_QUOTA_US, cpu_millis * CPU_PERIOD_US // 1000)
    if memory_bytes > 0 and layout.place("memory") == "v2" and cgroup.v2 is not None:
        _write(cgroup.v2 / "memory.max", str(memory_bytes))
        if (cgroup.v2 / "memory.swap.max").exists():
            _write(cgroup.v2 / "memory.swap.max", "0")  # else the limit only moves pages to swap
    elif memory_bytes > 0 and "memory" in v1_dirs:
        _write(v1_dirs["memory"] / "memory.limit_in_bytes", str(memory_bytes))
        with contextlib.suppress(OSError):  # present only with swap accounting
            _write(v1_dirs["memory"] / "memory.memsw.limit_in_bytes", str(memory_bytes))
    if cpu_millis > 0 and layout.place("cpu") == "v2" and cgroup.v2 is not None:
        _write(cgroup.v2 / "cpu.max", f"{quota} {CPU_PERIOD_US}")
    elif cpu_millis > 0 and "cpu" in v1_dirs:
        _write(v1_dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(v1_dirs["cpu"] / "cpu.cfs_quota_us", str(quota))
    return cgroup


def cleanup_scope(scope: str, layout: Layout | None = None, timeout: float = 5.0) -> int:
    """Kill and remove every cgroup left under ``rackcloud/<scope>``; how many were removed.

    For an agent that restarts after a crash: the containers it started may still run,
    and must not, since the monitors may already have given them to another node.
    Blocking (it waits for the trees to die): call it before serving, or in a thread.
    """
    layout = layout if layout is not None else probe()
    if layout is None:
        return 0
    names: dict[str, None] = {}
    for base in layout.bases():
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.scandir(base / TOP / scope):
                if entry.is_dir(follow_symlinks=False):
                    names[entry.name] = None
    removed = 0
    for name in names:
        full = _cgroup_of(layout, scope, name)
        v2 = full.v2 if full.v2 is not None and full.v2.is_dir() else None
        cgroup = Cgroup(v2=v2, v1=tuple(d for d in full.v1 if d.is_dir()))
        deadline = time.monotonic() + timeout
        cgroup.kill()
        while not cgroup.remove() and time.monotonic() < deadline:
            time.sleep(0.01)
            cgroup.kill()
        if not any(d.is_dir() for d in cgroup.dirs):
            removed += 1
    for base in layout.bases():
        with contextlib.suppress(OSError):
            os.rmdir(base / TOP / scope)
    return removed
