"""The agent's own supervisor, run as Ansible runs it: a real command, real processes.

The running agent is a stand-in: a ``--python`` script that sleeps with the agent's
arguments (``-m agent.node.main --conf CONF``), so its cmdline is an agent's; the start
failure runs the real agent on a config it refuses. Every process a test starts is
killed at teardown, by pid, and only if its cmdline names that test's directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.node import daemon
from agent.node.daemon import is_agent_cmdline, parse_pidfile

SLEEPER = "import time; time.sleep(600)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def fake_python(path: Path, code: str) -> Path:
    """A ``--python`` that runs ``code`` with whatever arguments the supervisor passes."""
    path.write_text(f"#!/bin/sh\nexec {sys.executable} -c '{code}' \"$@\"\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class Host:
    """One node's files, and the supervisor command run on them."""

    base: Path
    conf: Path
    pidfile: Path
    log: Path
    started: list[int] = field(default_factory=list)

    def cmd(self, action: str) -> list[str]:
        return [
            *(sys.executable, "-m", "agent.node.daemon", action),
            *("--conf", str(self.conf), "--pidfile", str(self.pidfile), "--log", str(self.log)),
        ]

    def run(self, action: str, *extra: str) -> tuple[int, Any, str]:
        cmd = [*self.cmd(action), *extra]
        # capture_output waits for EOF on both pipes: an agent holding them would hang this
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        lines = done.stdout.splitlines()
        assert len(lines) == 1, f"not one JSON line: {done.stdout!r} {done.stderr!r}"
        answer = json.loads(lines[0])
        assert set(answer) >= {"changed", "running", "pid", "message"}
        if isinstance(answer["pid"], int):
            self.started.append(answer["pid"])
        return done.returncode, answer, done.stderr


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(
        tmp_path, tmp_path / "etc" / "agent.toml", tmp_path / "agent.pid", tmp_path / "agent.log"
    )
    h.conf.parent.mkdir()
    h.conf.write_text("# never read by the stand-in agent\n", encoding="utf-8")
    try:
        yield h
    finally:
        for pid in h.started:
            if any(str(tmp_path) in arg for arg in cmdline(pid)):
                os.kill(pid, signal.SIGKILL)


def test_start_twice_status_stop_twice(host: Host) -> None:
    python = str(fake_python(host.base / "fakepy", SLEEPER))
    rc, answer, err = host.run("start", "--python", python)
    assert (rc, err) == (0, "")
    assert answer["changed"] is True and answer["running"] is True
    pid = answer["pid"]
    assert isinstance(pid, int) and alive(pid)
    args = cmdline(pid)
    assert args[-4:] == ["-m", "agent.node.main", "--conf", str(host.conf)]
    assert host.pidfile.read_text().split()[0] == str(pid)
    assert host.pidfile.stat().st_mode & 0o777 == 0o644
    assert os.getsid(pid) == pid  # its own session: no terminal or group signal reaches it
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/fd/1") == os.readlink(f"/proc/{pid}/fd/2") == str(host.log)
    fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert not [fd for fd in fds if fd.startswith(("pipe:", "socket:"))]  # none of the caller's

    rc, again, _ = host.run("start", "--python", python)
    assert rc == 0 and again["changed"] is False and again["pid"] == pid
    assert "already" in again["message"]

    rc, status, _ = host.run("status")
    assert rc == 0 and (status["changed"], status["running"], status["pid"]) == (False, True, pid)

    rc, stopped, _ = host.run("stop")
    assert rc == 0 and (stopped["changed"], stopped["running"], stopped["pid"]) == (
        True,
        False,
        None,
    )
    assert not alive(pid) and not host.pidfile.exists()

    rc, again, _ = host.run("stop")
    assert rc == 0 and again["changed"] is False and again["running"] is False
    rc, status, _ = host.run("status")
    assert rc == 0 and (status["changed"], status["running"], status["pid"]) == (False, False, None)


def test_an_agent_ignoring_sigterm_is_killed_after_the_grace(host: Host) -> None:
    python = str(fake_python(host.base / "fakepy", STUBBORN))
    _, started, _ = host.run("start", "--python", python)
    pid = started["pid"]
    t0 = time.monotonic()
    rc, stopped, _ = host.run("stop", "--grace", "0.3")
    assert rc == 0 and stopped["changed"] is True and "SIGKILL" in stopped["message"]
    assert time.monotonic() - t0 < 30
    assert not alive(pid) and not host.pidfile.exists()


def test_the_real_agent_refusing_its_config_fails_the_start_with_its_log(host: Host) -> None:
    host.conf.write_text("this is = not [toml\n", encoding="utf-8")
    host.log.write_text("an earlier run\n", encoding="utf-8")
    rc, answer, err = host.run("start")  # the real agent.node.main of this venv
    assert rc == 1
    assert (answer["changed"], answer["running"], answer["pid"]) == (False, False, None)
    assert "exited with status 2" in answer["message"]
    assert f"config file {host.conf} is not valid TOML" in answer["message"]
    assert err.startswith("rack-agent daemon: the agent exited with status 2")
    assert not host.pidfile.exists()
    assert host.log.read_text().startswith("an earlier run\n")  # appended, not truncated


def test_a_start_failure_quotes_the_last_three_lines_of_the_log(host: Host) -> None:
    lines = "; ".join(f'print("line {i}")' for i in range(1, 6))
    python = str(fake_python(host.base / "fakepy", f"{lines}; raise SystemExit(3)"))
    rc, answer, _ = host.run("start", "--python", python)
    assert rc == 1 and answer["running"] is False
    message = answer["message"]
    assert "exited with status 3" in message
    assert "line 3 | line 4 | line 5" in message and "line 2" not in message
    assert not message.endswith(".") and message[0].islower()


def test_a_python_that_cannot_run_is_one_sentence(host: Host) -> None:
    rc, answer, err = host.run("start", "--python", str(host.base / "no-such-python"))
    assert rc == 1 and answer["running"] is False
    assert answer["message"].startswith(f"python {host.base / 'no-such-python'} cannot be run")
    assert err.startswith("rack-agent daemon: python ")
    assert not host.pidfile.exists()


def test_a_pidfile_naming_another_process_is_stale_and_never_signalled(host: Host) -> None:
    other_conf = host.base / "other.toml"
    python = str(fake_python(host.base / "fakepy", SLEEPER))
    # another node's agent on this host, and a process with nothing to do with agents
    other_agent = subprocess.Popen([python, "-m", "agent.node.main", "--conf", str(other_conf)])
    unrelated = subprocess.Popen(["sleep", "600"])
    try:
        for victim in (other_agent, unrelated):
            host.pidfile.write_text(f"{victim.pid} 0.1.0\n", encoding="ascii")
            rc, status, _ = host.run("status")
            assert rc == 0 and status["running"] is False
            rc, stopped, _ = host.run("stop", "--grace", "0.2")
            assert rc == 0 and stopped["changed"] is False
            assert not host.pidfile.exists()  # the stale pidfile is gone
            assert victim.poll() is None  # and nothing was signalled
        host.pidfile.write_text(f"{os.getpid()}\n", encoding="ascii")  # this very test
        rc, started, _ = host.run("start", "--python", python)
        assert rc == 0 and started["changed"] is True and started["pid"] != os.getpid()
        assert host.pidfile.read_text().split()[0] == str(started["pid"])
        assert other_agent.poll() is None and unrelated.poll() is None
    finally:
        for proc in (other_agent, unrelated):
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage\n", b"\xff\xfe\x00", "\u00b2".encode(), b"-5", b"1", b"99999999999999999999"],
)
def test_a_garbage_pidfile_is_stale(host: Host, content: bytes) -> None:
    host.pidfile.write_bytes(content)
    rc, status, _ = host.run("status")
    assert rc == 0 and status["running"] is False
    assert host.pidfile.exists()  # status changes nothing
    rc, stopped, _ = host.run("stop")
    assert rc == 0 and stopped["changed"] is False and not host.pidfile.exists()


def test_a_garbage_pidfile_is_replaced_at_start(host: Host) -> None:
    host.pidfile.write_bytes(b"not a pid\n")
    python = str(fake_python(host.base / "fakepy", SLEEPER))
    rc, started, _ = host.run("start", "--python", python)
    assert rc == 0 and started["changed"] is True
    assert host.pidfile.read_text().split()[0] == str(started["pid"])
    assert not list(host.base.glob("*.tmp"))


def test_usage_errors_answer_with_the_json_too(host: Host) -> None:
    for cmd in (
        [sys.executable, "-m", "agent.node.daemon", "start", "--conf", str(host.conf)],
        [*host.cmd("stop"), "--grace", "-1"],
        host.cmd("restart"),
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 1
        answer = json.loads(done.stdout)
        assert (answer["changed"], answer["running"], answer["pid"]) == (False, False, None)
        assert done.stderr.startswith("rack-agent daemon: ")


def test_a_zombie_is_not_running() -> None:
    proc = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert Path(f"/proc/{proc.pid}").exists()  # not reaped yet: a zombie
        assert daemon._alive(proc.pid) is False
    finally:
        proc.wait()


def test_the_cmdline_must_name_the_module_and_this_exact_conf() -> None:
    conf = "/etc/rackcloud/agent.toml"

    def nul(*args: str) -> bytes:
        return b"".join(a.encode() + b"\0" for a in args)

    py = "/opt/rackcloud/venv/bin/python"
    assert is_agent_cmdline(nul(py, "-m", "agent.node.main", "--conf", conf), conf)
    assert is_agent_cmdline(nul(py, "-m", "agent.node.main", f"--conf={conf}"), conf)
    assert is_agent_cmdline(nul("/bin/sh", "fakepy", "-m", "agent.node.main", "--conf", conf), conf)
    assert not is_agent_cmdline(nul(py, "-m", "agent.node.main", "--conf", conf + ".bak"), conf)
    assert not is_agent_cmdline(nul(py, "-m", "agent.node.main", "--conf", "agent.toml"), conf)
    assert not is_agent_cmdline(nul(py, "-m", "agent.node.daemon", "--conf", conf), conf)
    assert not is_agent_cmdline(nul("vi", conf, "agent.node.main"), conf)  # not after --conf
    assert not is_agent_cmdline(nul(py, "-m", "agent.node.main", "--conf"), conf)
    assert not is_agent_cmdline(b"", conf)


def test_pidfile_parsing() -> None:
    assert parse_pidfile("1234 0.1.0\n") == (1234, "0.1.0")
    assert parse_pidfile("1234\n") == (1234, "")
    for garbage in ("", "\n", "x", "-5", "+5", "0", "1", "12.5", "\u00b2", "\u0663", "9" * 20):
        assert parse_pidfile(garbage) is None, garbage
