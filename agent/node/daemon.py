"""The agent's own small supervisor, for hosts without systemd (and for the lab).

``python -m agent.node.daemon start|stop|status --conf CONF --pidfile P --log L``
prints one JSON object, ``{"changed", "running", "pid", "version", "message"}``, which
Ansible's agent role reads for ``changed_when``; it exits 0, or 1 when the action failed
(usage errors included, so a task always gets its JSON). Start and stop are idempotent: a
running agent is recognised by its pidfile *and* its ``/proc/PID/cmdline`` naming this
config, so a recycled pid is never taken for it, nor signalled. The agent runs in its
own session (``setsid``), with stdin closed and its output appended to the log, so it
outlives the command that started it and holds none of that command's pipes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from agent import __version__
from agent.errors import RackError

AGENT_MODULE = "agent.node.main"
START_WATCH_S = 1.0
"""An agent that exits this soon after start failed (a bad config, a port in use)."""
KILL_WAIT_S = 10.0
"""How long a SIGKILLed agent may take to go; longer means it hangs in the kernel."""
POLL_S = 0.05
LOG_TAIL_LINES = 3


class DaemonError(RackError):
    """The agent could not be started or stopped."""


def is_agent_cmdline(cmdline: bytes, conf: str) -> bool:
    """Whether ``cmdline`` (NUL-separated, from /proc) is an agent run with ``--conf conf``.

    Both the module and the exact ``--conf`` argument must be there: another node's agent
    on this host, or any process that got the pid since, is not this agent.
    """
    args = cmdline.split(b"\0")
    want = conf.encode()
    after_conf = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == b"--conf"]
    return AGENT_MODULE.encode() in args and (want in after_conf or b"--conf=" + want in args)


def parse_pidfile(text: str) -> tuple[int, str] | None:
    """``PID`` and the version written beside it; None for anything else (a stale file)."""
    parts = text.split()
    if not parts or not (parts[0].isascii() and parts[0].isdigit()) or len(parts[0]) > 10:
        return None
    pid = int(parts[0])
    return (pid, parts[1] if len(parts) > 1 else "") if pid > 1 else None


def _alive(pid: int) -> bool:
    """Exists and is not a zombie (an exited agent whose parent has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] not in (["Z"], ["X"], [])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return f"its log {path} cannot be read"
    if not text:
        return f"its log {path} is empty"
    return f"the end of {path}: " + " | ".join(line.strip() for line in text[-lines:])


def _wait(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` until it holds or ``timeout`` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return done()
        time.sleep(POLL_S)
    return True


def _answer(changed: bool, pid: int | None, version: str, message: str) -> dict[str, object]:
    return {
        "changed": changed,
        "running": pid is not None,
        "pid": pid,
        "version": version,
        "message": message,
    }


class Daemon:
    def __init__(self, conf: str, pidfile: Path, log: Path, python: str) -> None:
        # abspath, not resolve: the very argument the agent was started with is matched
        self.conf, self.pidfile, self.log, self.python = os.path.abspath(conf), pidfile, log, python

    def running(self) -> tuple[int, str] | None:
        """The agent's pid and version if the pidfile names a live agent on this config."""
        try:
            entry = parse_pidfile(self.pidfile.read_text(encoding="ascii", errors="replace"))
        except OSError:
            return None
        if entry is not None and self._is_ours(entry[0]):
            return entry
        return None

    def _is_ours(self, pid: int) -> bool:
        return _alive(pid) and is_agent_cmdline(_cmdline(pid), self.conf)

    def _forget(self) -> None:
        try:
            self.pidfile.unlink(missing_ok=True)
        except OSError as exc:
            raise DaemonError(f"pidfile {self.pidfile} cannot be removed: {exc.strerror}") from None

    def status(self) -> dict[str, object]:
        found = self.running()
        if found is None:
            return _answer(False, None, "", "the agent is not running")
        return _answer(False, found[0], found[1], f"the agent runs (pid {found[0]})")

    def start(self) -> dict[str, object]:
        found = self.running()
        if found is not None:
            return _answer(False, found[0], found[1], f"the agent runs already (pid {found[0]})")
        self._forget()  # stale, if any
        proc = self._spawn()
        try:
            self._write_pidfile(proc.pid)
        except OSError as exc:
            proc.kill()  # untracked, it could never be stopped
            proc.wait()
            raise DaemonError(f"pidfile {self.pidfile} cannot be written: {exc.strerror}") from None
        if _wait(lambda: proc.poll() is not None, START_WATCH_S):
            self._forget()
            code = proc.returncode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise DaemonError(f"the agent {how} as it started; {_tail(self.log)}")
        return _answer(True, proc.pid, __version__, f"started the agent (pid {proc.pid})")

    def _spawn(self) -> subprocess.Popen[bytes]:
        try:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log, "ab")  # noqa: SIM115 (the child keeps it; we close ours)
        except OSError as exc:
            raise DaemonError(f"log file {self.log} cannot be opened: {exc.strerror}") from None
        with out:
            try:
                return subprocess.Popen(
                    [self.python, "-m", AGENT_MODULE, "--conf", self.conf],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    cwd="/",  # never a source tree: '-m agent' must import the installed package
                )
            except OSError as exc:
                raise DaemonError(f"python {self.python} cannot be run: {exc.strerror}") from None

    def _write_pidfile(self, pid: int) -> None:
        """Atomically (tmp and rename), so no reader ever sees half a pid."""
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pidfile.with_name(self.pidfile.name + ".tmp")
        tmp.write_text(f"{pid} {__version__}\n", encoding="ascii")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.pidfile)

    def stop(self, grace: float) -> dict[str, object]:
        found = self.running()
        if found is None:
            self._forget()  # stale, if any
            return _answer(False, None, "", "the agent is not running")
        pid = found[0]
        self._signal(pid, signal.SIGTERM)
        how = ""
        # not our child, so /proc is polled; the cmdline check again, lest the pid be reused
        if not _wait(lambda: not self._is_ours(pid), grace):
            self._signal(pid, signal.SIGKILL)
            how = f" with SIGKILL, after {grace:g} s of SIGTERM"
            if not _wait(lambda: not self._is_ours(pid), KILL_WAIT_S):
                raise DaemonError(
                    f"the agent (pid {pid}) is still there {KILL_WAIT_S:g} s after SIGKILL"
                )
        self._forget()
        return _answer(True, None, "", f"stopped the agent (pid {pid}){how}")

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass  # gone already
        except PermissionError:
            raise DaemonError(
                f"the agent (pid {pid}) may not be signalled by this user; run as its user"
            ) from None


class _Parser(argparse.ArgumentParser):
    """Usage errors answer with the JSON too, so an Ansible task can always parse it."""

    def error(self, message: str) -> NoReturn:
        _fail(message, _answer(False, None, "", message))
        sys.exit(1)


def _fail(message: str, answer: dict[str, object]) -> None:
    print(json.dumps(answer))
    print(f"rack-agent daemon: {message}", file=sys.stderr)


def seconds(text: str) -> float:
    """A ``--grace`` value (argparse names the type ``seconds`` in its error)."""
    value = float(text)
    if not 0 <= value <= 3600:
        raise ValueError(text)
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m agent.node.daemon", description="the agent's own supervisor")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--conf", required=True, help="the node config the agent runs with")
    parser.add_argument("--pidfile", required=True, type=Path)
    parser.add_argument("--log", required=True, type=Path, help="the agent's output, appended")
    parser.add_argument(
        "--grace", type=seconds, default=10.0, help="seconds from SIGTERM to SIGKILL (0-3600)"
    )
    parser.add_argument("--python", default=sys.executable, help="the venv's python")
    args = parser.parse_args(argv)
    daemon = Daemon(args.conf, args.pidfile, args.log, args.python)
    try:
        if args.action == "start":
            answer = daemon.start()
        elif args.action == "stop":
            answer = daemon.stop(args.grace)
        else:
            answer = daemon.status()
    except (RackError, OSError) as exc:
        found = daemon.running()  # the truth after the failure, e.g. an agent that will not die
        pid, version = found if found is not None else (None, "")
        _fail(str(exc), _answer(False, pid, version, str(exc)))
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
