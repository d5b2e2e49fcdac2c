"""Containers as supervised process trees: namespaces and cgroups as root, a group otherwise.

As root (and ``isolate``) a container is started through the launcher (``launch.py``),
which joins the container's cgroups before anything forks, unshares the pid, mount, UTS
and IPC namespaces and execs the command as pid 1 of its namespace. Without root it is a
plain process in a new session, and its process group is the tree.

An :class:`Instance` reaps its own process instead of leaving it to asyncio's child
watcher: until the pid is reaped neither it nor its process-group id can be reused, so
:meth:`Instance.kill`, called from any thread, never signals an unrelated process. The
exit is noticed through a pidfd watched by the event loop.

Exit statuses, as :func:`os.waitstatus_to_exitcode` gives them in every mode: the exit
code (0, 3, ...) or minus the signal that killed the main process (-9 after
:meth:`Instance.kill`, -15 for a SIGTERM it did not handle). The launcher dies of the same
signal as its child, so 137 never stands for a signal. 127: the command could not be
exec'ed (then :meth:`Runtime.start` raises instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import select
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.runtime import cgroups
from agent.runtime.errors import RuntimeFault

__all__ = ["Instance", "RunSpec", "Runtime"]

_log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("launch.py")
START_TIMEOUT = 10.0  # seconds for the launcher to exec the command
DRAIN_TIMEOUT = 5.0  # seconds for the rest of a tree to die once its main process exited
_MAX_CONFIG = 120 * 1024  # one argument may not exceed 128 KiB (MAX_ARG_STRLEN)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores them; exec would keep that


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    """What to run, and how; ``name`` and ``scope`` become cgroup and file names."""

    name: str
    generation: int
    argv: tuple[str, ...]
    env: Mapping[str, str]
    log_path: Path
    scope: str
    memory_bytes: int = 0
    cpu_millis: int = 0
    isolate: bool = True
    hostname: str | None = None
    pidfile: Path | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise RuntimeFault(
                f"container name {self.name!r} must be 1 to 63 of a-z, 0-9 and '-'"
                ", starting with a letter or digit"
            )
        if not _SCOPE.fullmatch(self.scope):
            raise RuntimeFault(f"cgroup scope {self.scope!r} must be letters, digits, '_.-'")
        if not self.argv:
            raise RuntimeFault(f"container {self.name} has an empty command")
        if self.generation < 0 or self.memory_bytes < 0 or self.cpu_millis < 0:
            raise RuntimeFault(f"container {self.name} has a negative generation or limit")

    @property
    def leaf(self) -> str:
        """The name of the container's cgroup: one per generation."""
        return f"{self.name}-g{self.generation}"


def _reason(err: OSError) -> str:
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


def _signal_pidfd(pidfd: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, OSError):
        signal.pidfd_send_signal(pidfd, signum)


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _write_pidfile(path: Path, pid: int) -> None:
    """Atomically, so the lab never reads half a pid."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)


class Instance:
    """A started container: its process tree, its cgroup, its exit status.

    ``pid`` is the launcher's (namespaces) or the command's own (process group).
    """

    def __init__(
        self,
        spec: RunSpec,
        pid: int,
        *,
        cgroup: cgroups.Cgroup | None,
        launcher: bool,
        started_at: float,
        log: logging.Logger,
    ) -> None:
        self.spec = spec
        self.pid = pid
        self.started_at = started_at
        self._cgroup = cgroup
        self._launcher = launcher
        self._log = log
        self._lock = threading.Lock()  # kill() from a watchdog thread vs reaping on the loop
        self._pidfd = os.pidfd_open(pid)  # our unreaped child: it cannot be another process
        self._init_pidfd: int | None = None  # pid 1 of the namespace, once the launcher said
        self._reaped = False
        self._cgroup_removed = cgroup is None
        self._result: int | None = None
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[int] = self._loop.create_future()
        self._finishing: asyncio.Task[None] | None = None
        self._loop.add_reader(self._pidfd, self._on_exit)
        if spec.pidfile is not None:
            try:
                _write_pidfile(spec.pidfile, pid)
            except OSError as err:
                self._log.warning("cannot write the pidfile %s: %s", spec.pidfile, _reason(err))

    @property
    def exited(self) -> int | None:
        """The exit status once the tree is gone (as :meth:`wait` returns it), else None."""
        return self._result

    @property
    def cgroup(self) -> cgroups.Cgroup | None:
        """The container's cgroup, None without one (for metrics, and for tests)."""
        return self._cgroup

    def kill(self) -> None:
        """SIGKILL the whole tree now; synchronous, thread-safe, idempotent, never raises.

        For a watchdog thread while the event loop is blocked: it touches only the kernel
        (``cgroup.kill``; else SIGKILL to the process group and to the namespace's pid 1),
        never the loop. The exit is then noticed on the loop as for any other exit.
        """
        try:
            with self._lock:
                self._signal_locked(signal.SIGKILL)
        except Exception:  # never raises: it is the last resort of its caller
            self._log.exception("killing container %s failed", self.spec.name)

    async def stop(self, grace: float = 2.0) -> int | None:
        """SIGTERM to the tree, up to ``grace`` seconds to exit, then :meth:`kill`.

        Returns the exit status, or None when even the tree killed did not exit within
        ``DRAIN_TIMEOUT`` (a process stuck in the kernel).
        """
        if self._result is not None:
            return self._result
        try:
            with self._lock:
                self._signal_locked(signal.SIGTERM)
        except OSError as err:
            self._log.warning("cannot signal container %s: %s", self.spec.name, _reason(err))
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(self._done), grace)
        self.kill()
        try:
            return await asyncio.wait_for(asyncio.shield(self._done), DRAIN_TIMEOUT + 1.0)
        except TimeoutError:
            self._log.warning("container %s did not exit after it was killed", self.spec.name)
            return None

    async def wait(self) -> int:
        """The exit status of the main process, once no process of the tree is left and the
        cgroup is removed."""
        return await asyncio.shield(self._done)

    def _adopt_init(self, init_pid: int) -> None:
        """Hold pid 1 of the namespace by a pidfd, to signal it without the launcher."""
        try:
            pidfd = os.pidfd_open(init_pid)
        except OSError:
            return  # gone already: the launcher is exiting too
        # The launcher (unreaped, so its pid is still its own) must be the parent: else
        # the pid was reused after the container's pid 1 died.
        if _parent_of(init_pid) != self.pid or self._reaped:
            os.close(pidfd)
            return
        self._init_pidfd = pidfd

    def _signal_locked(self, signum: int) -> None:
        """Signal the tree; the launcher only with SIGKILL (it forwards nothing twice)."""
        kill = signum == signal.SIGKILL
        if self._cgroup is not None and not self._cgroup_removed:
            if kill:
                self._cgroup.kill()
            else:
                self._cgroup.signal(signum, skip=(self.pid,) if self._launcher else ())
                return
        if self._init_pidfd is not None:
            _signal_pidfd(self._init_pidfd, signum)
        if self._reaped:
            return  # the pid and its group id may belong to another process by now
        if not self._launcher:
            _killpg(self.pid, signum)
        elif kill:
            _signal_pidfd(self._pidfd, signum)
            _killpg(self.pid, signum)
        elif self._init_pidfd is None:
            _signal_pidfd(self._pidfd, signum)  # the launcher forwards it to pid 1

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        if self._finishing is None:
            self._finishing = self._loop.create_task(self._finish())

    async def _finish(self) -> None:
        """The main process exited: kill the rest, reap, wait for the tree, remove the cgroup."""
        code = -signal.SIGKILL
        try:
            with self._lock:
                try:
                    self._signal_locked(signal.SIGKILL)  # nothing outlives the main process
                except OSError as err:
                    self._log.warning("cannot kill container %s: %s", self.spec.name, _reason(err))
                try:
                    _, status = os.waitpid(self.pid, 0)  # a zombie already: does not block
                    code = os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    self._log.warning("container %s was reaped by someone else", self.spec.name)
                self._reaped = True
                os.close(self._pidfd)
            await self._drain()
        except OSError as err:
            self._log.warning("cleaning up container %s: %s", self.spec.name, _reason(err))
        finally:
            if self.spec.pidfile is not None:
                with contextlib.suppress(OSError):
                    self.spec.pidfile.unlink(missing_ok=True)
            with self._lock:
                if self._init_pidfd is not None:
                    os.close(self._init_pidfd)
                    self._init_pidfd = None
            self._result = code
            if not self._done.done():
                self._done.set_result(code)

    async def _drain(self) -> None:
        """Wait until no process of the tree is left, then remove the cgroup."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        delay = 0.001
        while self._tree_alive():
            if time.monotonic() > deadline:
                self._log.warning("container %s: processes outlive it", self.spec.name)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            self.kill()
        if self._cgroup is None:
            return
        while True:
            with self._lock:
                if self._cgroup.remove():
                    self._cgroup_removed = True
                    return
            if time.monotonic() > deadline:
                self._log.warning("cannot remove the cgroup %s", self._cgroup.primary)
                return
            await asyncio.sleep(0.01)

    def _tree_alive(self) -> bool:
        if self._cgroup is not None:
            return self._cgroup.populated()
        if self._init_pidfd is not None:  # the namespace dies with its pid 1
            return not _pidfd_exited(self._init_pidfd)
        if self._launcher:
            return False
        return _group_lives(self.pid)


def _group_lives(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies do not: the init that inherited
    them may reap them seconds later).

    Only signal 0 and reading ``/proc`` once the leader is reaped: the group id stays
    reserved while the group has members, and a reused one is at worst waited for.
    """
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def _pidfd_exited(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])


class Runtime:
    """Starts containers the best way this machine allows, decided once."""

    def __init__(self, *, log: logging.Logger | None = None) -> None:
        self._log = log if log is not None else _log
        self._root = os.geteuid() == 0
        self._layout = cgroups.probe() if self._root else None
        if not self._root:
            self._mode = "process group"
            why = "not root: no namespaces, no cgroups, no limits"
        elif self._layout is None:
            self._mode = "namespaces, no cgroups"
            why = "no writable cgroup hierarchy: no limits, kill by process group"
        else:
            self._mode = f"namespaces+{self._layout.describe()}"
            why = "kill by cgroup"
        self._log.info("container runtime: %s (%s)", self._mode, why)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def layout(self) -> cgroups.Layout | None:
        return self._layout

    async def start(self, spec: RunSpec) -> Instance:
        """Start ``spec``; returns once its command runs. Raises :class:`RuntimeFault`."""
        try:
            with open(spec.log_path, "a") as f:
                f.write(f"--- generation {spec.generation} starts ---\n")
        except OSError as err:
            raise RuntimeFault(
                f"cannot write the log of container {spec.name} to {spec.log_path}: " + _reason(err)
            ) from err
        if self._root and spec.isolate:
            return await self._start_isolated(spec)
        if spec.memory_bytes or spec.cpu_millis:
            self._log.warning("container %s runs as a process group: no limits", spec.name)
        return _start_group(spec, self._log)

    async def _start_isolated(self, spec: RunSpec) -> Instance:
        cgroup = self._make_cgroup(spec)
        config = json.dumps(
            {
                "argv": list(spec.argv),
                "env": dict(spec.env),
                "cgroups": [] if cgroup is None else cgroup.procs_files(),
                "hostname": spec.hostname,
                "parent": os.getpid(),
            }
        )
        if len(config.encode()) > _MAX_CONFIG:
            if cgroup is not None:
                cgroup.remove()
            raise RuntimeFault(
                f"the command and environment of container {spec.name} exceed "
                f"{_MAX_CONFIG // 1024} KiB"
            )
        report_r, report_w = _report_pipe()
        argv = [sys.executable, "-I", "-S", str(LAUNCHER), config]
        try:
            started_at = time.monotonic()
            pid = _spawn(sys.executable, argv, {}, spec.log_path, report_w)
        except OSError as err:
            os.close(report_r)
            if cgroup is not None:
                cgroup.remove()
            raise RuntimeFault(
                f"container {spec.name} cannot start: the launcher failed: {_reason(err)}"
            ) from err
        finally:
            os.close(report_w)
        instance = Instance(
            spec, pid, cgroup=cgroup, launcher=True, started_at=started_at, log=self._log
        )
        try:
            report = await asyncio.wait_for(_read_to_end(report_r), START_TIMEOUT)
        except BaseException as err:  # a timeout, or the caller cancelled the start
            instance.kill()
            if isinstance(err, TimeoutError):
                await instance.wait()
                raise RuntimeFault(
                    f"container {spec.name} did not start within {START_TIMEOUT:g} s"
                ) from err
            raise
        finally:
            os.close(report_r)
        lines = report.decode(errors="replace").splitlines()
        errors = [line.removeprefix("error ") for line in lines if line.startswith("error ")]
        pids = [int(line.split()[1]) for line in lines if line.startswith("pid ")]
        if errors or not pids:
            status = await instance.wait()
            why = errors[0] if errors else f"the launcher exited with status {status}"
            raise RuntimeFault(f"container {spec.name} cannot start: {why}")
        instance._adopt_init(pids[0])
        return instance

    def _make_cgroup(self, spec: RunSpec) -> cgroups.Cgroup | None:
        layout = self._layout
        if layout is None:
            if spec.memory_bytes or spec.cpu_millis:
                self._log.warning("container %s: no cgroups here, no limits", spec.name)
            return None
        for controller, value in (("memory", spec.memory_bytes), ("cpu", spec.cpu_millis)):
            if value and layout.place(controller) is None:
                self._log.warning("container %s: no %s limit here", spec.name, controller)
        try:
            return cgroups.create(
                layout,
                spec.scope,
                spec.leaf,
                memory_bytes=spec.memory_bytes,
                cpu_millis=spec.cpu_millis,
            )
        except FileExistsError as err:
            raise RuntimeFault(
                f"container {spec.name} generation {spec.generation} is already running here "
                f"(its cgroup {err.filename} holds processes)"
            ) from err
        except OSError as err:
            raise RuntimeFault(
                f"cannot set up the cgroup of container {spec.name}: {_reason(err)} "
                f"({err.filename})"
            ) from err


def _report_pipe() -> tuple[int, int]:
    """A pipe whose write end is numbered above 3, so it can be moved to fd 3 of the child."""
    r, w = os.pipe()
    try:
        return r, fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 10)
    finally:
        os.close(w)


def _spawn(
    path: str, argv: list[str], env: Mapping[str, str], log_path: Path, report: int | None
) -> int:
    """posix_spawn in a new session: stdin /dev/null, stdout and stderr appended to the log.

    Not asyncio's subprocess: its child watcher would reap the process behind our back
    (see :class:`Instance`).
    """
    actions: list[tuple[int, int, str, int, int] | tuple[int, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    if report is not None:
        actions.append((os.POSIX_SPAWN_DUP2, report, 3))
    return os.posix_spawn(
        path,
        argv,
        env,
        file_actions=actions,
        setsid=True,
        setsigmask=(),
        setsigdef=_DEFAULT_SIGNALS,
    )


def _start_group(spec: RunSpec, log: logging.Logger) -> Instance:
    command = spec.argv[0]
    path = command
    if "/" not in command:
        search = spec.env.get("PATH", os.defpath)
        found = shutil.which(command, path=search)
        if found is None:
            raise RuntimeFault(
                f"container {spec.name} cannot start: command {command!r} was not found "
                f"on its PATH ({search})"
            )
        path = found
    try:
        started_at = time.monotonic()
        pid = _spawn(path, list(spec.argv), dict(spec.env), spec.log_path, None)
    except FileNotFoundError as err:
        raise RuntimeFault(
            f"container {spec.name} cannot start: command {command!r} was not found"
        ) from err
    except OSError as err:
        raise RuntimeFault(
            f"container {spec.name} cannot start: command {command!r} cannot be run: "
            + _reason(err)
        ) from err
    return Instance(spec, pid, cgroup=None, launcher=False, started_at=started_at, log=log)


async def _read_to_end(fd: int) -> bytes:
    """Everything written to the pipe until every writer closed it, without blocking."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    chunks: list[bytes] = []
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            chunks.append(data)
        elif not done.done():
            done.set_result(b"".join(chunks))

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)
