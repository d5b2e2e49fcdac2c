"""The agent's own small supervisor, for hosts without systemd (and for the lab).

``python -m agent.node.daemon start|stop|status --conf CONF --pidfile P --log L``
prints one JSON object, ``{"changed", "running", "pid", "version", "message"}``, which
Ansible's agent role reads for ``changed_when``. Start and stop are idempotent: a
running agent is recognised by its pidfile *and* its ``/proc/PID/cmdline`` naming this
config, so a recycled pid is never taken for it, nor signalled. The agent runs in its
own session (``setsid``), with stdin closed and its output appended to the log, so it
outlives the command that started it and holds none of that command's pipes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent import __version__
from agent.errors import RackError

START_WATCH_S = 1.0
"""An agent that exits this soon after start failed (a bad config, a port in use)."""
POLL_S = 0.05


class DaemonError(RackError):
    """The agent could not be started or stopped."""


def is_agent_cmdline(cmdline: bytes, conf: Path) -> bool:
    """Whether ``cmdline`` (NUL-separated, from /proc) is an agent run on ``conf``."""
    args = cmdline.split(b"\0")
    return b"agent.node.main" in args and str(conf).encode() in args


def parse_pidfile(text: str) -> tuple[int, str] | None:
    """``PID`` and the version written beside it; None for anything else."""
    parts = text.split()
    if not parts or not parts[0].isdigit() or int(parts[0]) <= 1:
        return None
    return int(parts[0]), (parts[1] if len(parts) > 1 else "")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class Daemon:
    def __init__(self, conf: Path, pidfile: Path, log: Path, python: str) -> None:
        self.conf, self.pidfile, self.log, self.python = conf.resolve(), pidfile, log, python

    def running(self) -> tuple[int, str] | None:
        """The agent's pid and version if the pidfile names a live agent on this config."""
        try:
            entry = parse_pidfile(self.pidfile.read_text(encoding="ascii", errors="replace"))
        except OSError:
            return None
        if entry is None:
            return None
        pid = entry[0]
        if _alive(pid) and is_agent_cmdline(_cmdline(pid), self.conf):
            return entry
        return None

    def status(self) -> dict[str, object]:
        found = self.running()
        if found is None:
            return _answer(False, None, "", "the agent is not running")
        return _answer(False, found[0], found[1], f"the agent runs (pid {found[0]})")

    def start(self) -> dict[str, object]:
        found = self.running()
        if found is not None:
            return _answer(False, found[0], found[1], f"the agent runs already (pid {found[0]})")
        self.pidfile.unlink(missing_ok=True)  # stale
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(
                [self.python, "-m", "agent.node.main", "--conf", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                cwd="/",  # never a source tree: '-m agent' must import the installed package
            )
        tmp = self.pidfile.with_name(self.pidfile.name + ".tmp")
        tmp.write_text(f"{proc.pid} {__version__}\n", encoding="ascii")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.pidfile)
        deadline = time.monotonic() + START_WATCH_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                raise DaemonError(
                    f"the agent exited at start with status {proc.returncode}: {_tail(self.log)}"
                )
            time.sleep(POLL_S)
        return _answer(True, proc.pid, __version__, f"started the agent (pid {proc.pid})")

    def stop(self, grace: float) -> dict[str, object]:
        found = self.running()
        if found is None:
            self.pidfile.unlink(missing_ok=True)
            return _answer(False, None, "", "the agent is not running")
        pid = found[0]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(POLL_S)
        self.pidfile.unlink(missing_ok=True)
        return _answer(True, None, "", f"stopped the agent (pid {pid})")


def _answer(changed: bool, pid: int | None, version: str, message: str) -> dict[str, object]:
    return {
        "changed": changed,
        "running": pid is not None,
        "pid": pid,
        "version": version,
        "message": message,
    }


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.node.daemon", description="the agent's own supervisor"
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--conf", required=True, type=Path)
    parser.add_argument("--pidfile", required=True, type=Path)
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--python", default=sys.executable)
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
        print(json.dumps(_answer(False, None, "", str(exc))))
        print(f"rack-agent daemon: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
