"""Containers on real processes: the log, pid 1, kill, stop, exit statuses, limits, faults.

As root with ``isolate`` a container runs through the launcher in namespaces and cgroups;
``isolate=False`` (and any run without root) is the plain process-group path. Tests of
the group path run everywhere; the others skip without root.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.runtime import Instance, RunSpec, Runtime, RuntimeFault, cleanup_scope
from agent.runtime.cgroups import TOP
from tests.runtime.test_runtime_cgroups import alive, pids_of, token

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="namespaces and cgroups need root")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
RUNTIME = Runtime()
BOTH = pytest.mark.parametrize(
    "isolate",
    [pytest.param(True, id="namespaces", marks=needs_root), pytest.param(False, id="group")],
)


@pytest.fixture
def scope() -> Iterator[str]:
    """A scope of this test alone; no cgroup of it may be left afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    layout = RUNTIME.layout
    if layout is not None:
        left = cleanup_scope(name, layout)
        dirs = [b / TOP / name for b in layout.bases() if (b / TOP / name).exists()]
        assert (left, dirs) == (0, []), "the test left cgroups behind"


@pytest.fixture
def make(tmp_path: Path, scope: str) -> Any:
    def spec(*argv: str, **options: Any) -> RunSpec:
        defaults: dict[str, Any] = {
            "name": "c1",
            "generation": 1,
            "env": ENV,
            "log_path": tmp_path / "c1.log",
            "scope": scope,
        }
        return RunSpec(argv=argv, **(defaults | options))

    return spec


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 15)

    return asyncio.run(bounded())


async def log_shows(spec: RunSpec, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in spec.log_path.read_text():
        assert time.monotonic() < deadline, (
            f"{text!r} not in the log: {spec.log_path.read_text()!r}"
        )
        await asyncio.sleep(0.01)


async def running(*marks: str) -> list[int]:
    """The pids of the processes sleeping ``mark``, once each of them runs."""
    deadline = time.monotonic() + 5
    while not all(pids_of(m) for m in marks):
        assert time.monotonic() < deadline, f"{marks} never ran"
        await asyncio.sleep(0.01)
    return [pid for m in marks for pid in pids_of(m)]


def output(spec: RunSpec) -> list[str]:
    lines = spec.log_path.read_text().splitlines()
    assert lines[0] == f"--- generation {spec.generation} starts ---"
    return lines[1:]


@BOTH
def test_the_output_is_appended_to_the_log_after_the_generation_line(
    make: Any, isolate: bool
) -> None:
    spec = make("sh", "-c", "echo out; echo err >&2", isolate=isolate)
    spec.log_path.write_text("earlier\n")

    async def main() -> int:
        return await (await RUNTIME.start(spec)).wait()

    assert run(main()) == 0
    assert spec.log_path.read_text() == "earlier\n--- generation 1 starts ---\nout\nerr\n"


@needs_root
def test_the_command_is_pid_1_with_its_host_name_and_its_own_proc(make: Any) -> None:
    spec = make("sh", "-c", "echo $$; hostname; ls /proc", hostname="box-7")

    async def main() -> tuple[Instance, int]:
        instance = await RUNTIME.start(spec)
        return instance, await instance.wait()

    instance, status = run(main())
    assert status == 0
    pid, hostname, *listing = output(spec)
    assert (pid, hostname) == ("1", "box-7")
    assert instance.pid != 1
    processes = [name for name in listing if name.isdigit()]
    assert "1" in processes and len(processes) <= 2  # sh, and ls unless sh exec'ed it
    assert RUNTIME.mode.startswith("namespaces")


def test_the_group_path_runs_the_command_itself(make: Any) -> None:
    spec = make("sh", "-c", "echo $$", isolate=False)

    async def main() -> tuple[Instance, int]:
        instance = await RUNTIME.start(spec)
        return instance, await instance.wait()

    instance, status = run(main())
    assert (status, output(spec)) == (0, [str(instance.pid)])


@BOTH
def test_kill_takes_the_tree_with_a_detached_grandchild(make: Any, isolate: bool) -> None:
    """setsid leaves the process group; the cgroup (or the pid namespace) still holds it."""
    detached, child = token(), token()
    spec = make("sh", "-c", f"setsid sleep {detached} & sleep {child}; wait", isolate=isolate)

    async def main() -> tuple[int, list[int]]:
        instance = await RUNTIME.start(spec)
        pids = await running(detached, child)
        instance.kill()
        instance.kill()  # idempotent
        return await instance.wait(), pids

    status, pids = run(main())
    assert status == -signal.SIGKILL
    if isolate:
        assert not [pid for pid in pids if alive(pid)]
    else:  # a process group cannot hold what left it: only the group is killed
        assert not alive(pids[1])
        os.kill(pids[0], signal.SIGKILL)


@BOTH
def test_kill_works_from_a_thread_while_the_loop_is_blocked(make: Any, isolate: bool) -> None:
    mark = token()
    spec = make("sleep", mark, isolate=isolate)

    async def main() -> tuple[int, bool]:
        instance = await RUNTIME.start(spec)
        (pid,) = await running(mark)
        killer = threading.Thread(target=instance.kill)
        killer.start()
        killer.join()  # the loop is blocked from here on
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        dead_while_blocked = not alive(pid)
        return await instance.wait(), dead_while_blocked

    assert run(main()) == (-signal.SIGKILL, True)


@BOTH
def test_stop_lets_a_command_that_traps_term_exit_cleanly(make: Any, isolate: bool) -> None:
    script = 'trap "echo bye; exit 0" TERM; echo ready; while :; do sleep 0.05; done'
    spec = make("sh", "-c", script, isolate=isolate)

    async def main() -> int | None:
        instance = await RUNTIME.start(spec)
        await log_shows(spec, "ready")
        status = await instance.stop(grace=5.0)
        assert instance.exited == status
        assert await instance.stop() == status  # stopped already
        return status

    assert run(main()) == 0
    lines = output(spec)  # and "Terminated" when sh saw its sleep die of the SIGTERM too
    assert (lines[0], lines[-1]) == ("ready", "bye")


@BOTH
def test_stop_kills_a_command_that_ignores_term(make: Any, isolate: bool) -> None:
    script = 'trap "" TERM; echo ready; while :; do sleep 0.05; done'
    spec = make("sh", "-c", script, isolate=isolate)

    async def main() -> int | None:
        instance = await RUNTIME.start(spec)
        await log_shows(spec, "ready")
        return await instance.stop(grace=0.3)

    assert run(main()) == -signal.SIGKILL


@BOTH
@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (("true",), 0),
        (("sh", "-c", "exit 3"), 3),
        ((sys.executable, "-c", "import ctypes; ctypes.string_at(0)"), -signal.SIGSEGV),
    ],
    ids=["0", "3", "segfault"],
)
def test_wait_returns_the_exit_status(
    make: Any, isolate: bool, argv: tuple[str, ...], status: int
) -> None:
    """A signal is negative in both paths: the launcher dies of its child's signal."""
    spec = make(*argv, isolate=isolate)

    async def main() -> int:
        instance = await RUNTIME.start(spec)
        code = await instance.wait()
        assert instance.exited == code
        return code

    assert run(main()) == status


@needs_root
def test_the_main_process_killed_alone_is_minus_the_signal(make: Any) -> None:
    mark = token()
    spec = make("sleep", mark)

    async def main() -> int:
        instance = await RUNTIME.start(spec)
        (pid,) = await running(mark)
        os.kill(pid, signal.SIGKILL)  # pid 1 of the namespace, not the launcher
        return await instance.wait()

    assert run(main()) == -signal.SIGKILL


@BOTH
def test_a_missing_command_is_a_runtime_fault(make: Any, isolate: bool) -> None:
    spec = make("no-such-command-here", "x", isolate=isolate)
    with pytest.raises(RuntimeFault) as caught:
        run(RUNTIME.start(spec))
    assert str(caught.value) == (
        "container c1 cannot start: command 'no-such-command-here' was not found "
        f"on its PATH ({ENV['PATH']})"
    )


@BOTH
def test_a_command_that_cannot_be_executed_is_a_runtime_fault(
    make: Any, isolate: bool, tmp_path: Path
) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(RuntimeFault, match="cannot be run: permission denied"):
        run(RUNTIME.start(make(str(script), isolate=isolate)))


def test_a_log_that_cannot_be_written_is_a_runtime_fault(make: Any, tmp_path: Path) -> None:
    spec = make("true", log_path=tmp_path / "missing" / "c1.log")
    with pytest.raises(RuntimeFault, match="cannot write the log of container c1"):
        run(RUNTIME.start(spec))


def test_a_bad_spec_is_refused() -> None:
    base: dict[str, Any] = {
        "generation": 1,
        "argv": ("true",),
        "env": {},
        "log_path": Path("/dev/null"),
        "scope": "s",
    }
    with pytest.raises(RuntimeFault, match="container name 'Web/1' must be"):
        RunSpec(name="Web/1", **base)
    with pytest.raises(RuntimeFault, match=re.escape("cgroup scope '../x' must be")):
        RunSpec(**(base | {"name": "web", "scope": "../x"}))
    with pytest.raises(RuntimeFault, match="container web has an empty command"):
        RunSpec(**(base | {"name": "web", "argv": ()}))


def memory_limit_place() -> str | None:
    layout = RUNTIME.layout
    return None if layout is None else layout.place("memory")


@needs_root
@pytest.mark.skipif(
    memory_limit_place() is None, reason="needs root and a usable memory controller"
)
def test_the_memory_limit_stops_a_process_that_allocates_more(make: Any) -> None:
    grow = (
        "chunks = []\nfor _ in range(40):\n    chunks.append(b'x' * (10 << 20))\nprint('survived')"
    )
    spec = make(sys.executable, "-c", grow, memory_bytes=64 << 20)

    async def main() -> int:
        instance = await RUNTIME.start(spec)
        assert instance.cgroup is not None
        limits = [
            d / name
            for d in instance.cgroup.dirs
            for name in ("memory.max", "memory.limit_in_bytes")
            if (d / name).exists()
        ]
        assert [p.read_text().strip() for p in limits] == [str(64 << 20)]
        return await instance.wait()

    assert run(main()) == -signal.SIGKILL  # the OOM killer
    assert "survived" not in spec.log_path.read_text()


@needs_root
@pytest.mark.skipif(
    RUNTIME.layout is None or RUNTIME.layout.place("cpu") is None,
    reason="needs root and a usable cpu controller",
)
def test_the_cpu_limit_is_set_and_throttles(make: Any) -> None:
    spec = make(sys.executable, "-c", "while True: pass", cpu_millis=100)

    async def main() -> tuple[list[str], int]:
        instance = await RUNTIME.start(spec)
        assert instance.cgroup is not None
        dirs = instance.cgroup.dirs
        quota = [
            (d / name).read_text().strip()
            for d in dirs
            for name in ("cpu.max", "cpu.cfs_quota_us", "cpu.cfs_period_us")
            if (d / name).exists()
        ]
        stats = [
            d / "cpu.stat"
            for d in dirs
            if (d / "cpu.max").exists() or (d / "cpu.cfs_quota_us").exists()
        ]
        deadline = time.monotonic() + 5
        throttled = 0
        while throttled == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            fields = dict(line.split() for line in stats[0].read_text().splitlines())
            throttled = int(fields["nr_throttled"])
        instance.kill()
        await instance.wait()
        return quota, throttled

    quota, throttled = run(main())
    assert quota in (["10000 100000"], ["10000", "100000"])
    assert throttled > 0


@needs_root
def test_killing_the_launcher_by_its_pidfile_takes_the_container_down(
    make: Any, tmp_path: Path
) -> None:
    """The lab's "power pull": the pidfile names the launcher; its child dies with it."""
    detached, child = token(), token()
    pidfile = tmp_path / "c1.pid"
    spec = make("sh", "-c", f"setsid sleep {detached} & sleep {child}; wait", pidfile=pidfile)

    async def main() -> tuple[int, list[int]]:
        instance = await RUNTIME.start(spec)
        pids = await running(detached, child)
        assert pidfile.read_text() == f"{instance.pid}\n"
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        return await instance.wait(), pids

    status, pids = run(main())
    assert status == -signal.SIGKILL
    assert not [pid for pid in pids if alive(pid)]
    assert not pidfile.exists()


@needs_root
def test_a_generation_runs_only_once(make: Any) -> None:
    spec = make("sleep", token())

    async def main() -> None:
        instance = await RUNTIME.start(spec)
        try:
            with pytest.raises(RuntimeFault, match="generation 1 is already running here"):
                await RUNTIME.start(spec)
        finally:
            instance.kill()
            await instance.wait()

    run(main())


@needs_root
def test_setns_joins_a_namespace_again() -> None:
    """unshare, sethostname and setns (by fd and by path), in a process of their own."""
    code = """if True:
        import errno, os, socket
        from agent.runtime import linux
        before = socket.gethostname()
        fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
        linux.unshare(linux.CLONE_NEWUTS)
        linux.sethostname("inner")
        assert socket.gethostname() == "inner"
        linux.setns(fd, linux.CLONE_NEWUTS)
        assert socket.gethostname() == before
        linux.unshare(linux.CLONE_NEWUTS)
        linux.sethostname("inner")
        linux.setns(f"/proc/{os.getppid()}/ns/uts", linux.CLONE_NEWUTS)
        assert socket.gethostname() == before
        try:
            linux.setns(f"/proc/{os.getppid()}/ns/uts", linux.CLONE_NEWPID)
        except OSError as err:
            assert err.errno == errno.EINVAL, err
        else:
            raise AssertionError("setns took a namespace of the wrong type")
        print("ok")
    """
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


@needs_root
def test_without_cgroups_the_pid_namespace_holds_the_tree(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root on a machine with no usable cgroup: kill by pid 1 of the namespace."""
    monkeypatch.setattr("agent.runtime.cgroups.probe", lambda: None)
    runtime = Runtime()
    assert runtime.mode == "namespaces, no cgroups"
    detached, child = token(), token()
    spec = make("sh", "-c", f"setsid sleep {detached} & sleep {child}; wait")
    trapping = make("sh", "-c", 'trap "exit 5" TERM; echo ready; while :; do sleep 0.05; done')

    async def main() -> tuple[int, list[int], int | None]:
        instance = await runtime.start(spec)
        assert instance.cgroup is None
        pids = await running(detached, child)
        instance.kill()
        status = await instance.wait()
        stopping = await runtime.start(trapping)
        await log_shows(trapping, "ready")
        return status, pids, await stopping.stop(grace=5.0)

    status, pids, stopped = run(main())
    assert (status, stopped) == (-signal.SIGKILL, 5)
    assert not [pid for pid in pids if alive(pid)]


@needs_root
def test_the_launcher_forwards_sigterm_to_the_command(make: Any) -> None:
    spec = make("sh", "-c", 'trap "exit 5" TERM; echo ready; while :; do sleep 0.05; done')

    async def main() -> int:
        instance = await RUNTIME.start(spec)
        await log_shows(spec, "ready")
        os.kill(instance.pid, signal.SIGTERM)  # as an operator might, to the launcher
        return await instance.wait()

    assert run(main()) == 5
