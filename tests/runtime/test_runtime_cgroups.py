"""Cgroups: the layout probe, the files written on pure v2 and hybrid, and the real kernel.

This machine is hybrid (v1 memory and cpu, cgroup2 at /sys/fs/cgroup/unified), so the
pure-v2 write plan is checked on a directory tree standing in for cgroupfs; everything
else runs on the real kernel, as root.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.runtime.cgroups import TOP, Cgroup, Layout, cleanup_scope, create, probe

LAYOUT = probe() if os.geteuid() == 0 else None
needs_cgroups = pytest.mark.skipif(
    LAYOUT is None, reason="needs root and a writable cgroup hierarchy"
)


def mountinfo(*mounts: tuple[str, str, str, str]) -> str:
    """mountinfo lines for (root, mount point, fstype, super options)."""
    return "".join(
        f"{30 + i} 23 0:{40 + i} {root} {point} rw,relatime - {fstype} {fstype} {opts}\n"
        for i, (root, point, fstype, opts) in enumerate(mounts)
    )


def test_probe_finds_the_hybrid_layout(tmp_path: Path) -> None:
    for d in ("unified", "memory/agent/x", "cpu,cpuacct", "pids"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "unified" / "cgroup.controllers").write_text("\n")
    text = mountinfo(
        ("/", f"{tmp_path}/unified", "cgroup2", "rw"),
        ("/", f"{tmp_path}/memory", "cgroup", "rw,memory"),
        ("/", f"{tmp_path}/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
        ("/", f"{tmp_path}/pids", "cgroup", "rw,pids"),
        ("/", f"{tmp_path}/systemd", "cgroup", "rw,name=systemd"),
    )
    own = "5:pids:/\n4:memory:/agent/x\n2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n"
    layout = probe(mountinfo=text, proc_cgroup=own)
    assert layout == Layout(
        v2=tmp_path / "unified",
        v1={"memory": tmp_path / "memory/agent/x", "cpu": tmp_path / "cpu,cpuacct"},
        hybrid=True,
    )
    assert layout.describe() == "cgroup2(hybrid)+v1 memory,cpu"
    assert layout.bases() == [
        tmp_path / "unified",
        tmp_path / "memory/agent/x",
        tmp_path / "cpu,cpuacct",
    ]


def test_probe_finds_pure_v2_with_its_controllers(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    layout = probe(
        mountinfo=mountinfo(("/", str(tmp_path), "cgroup2", "rw,nsdelegate")),
        proc_cgroup="0::/system.slice/rack-agent.service\n",
    )
    assert layout is not None
    assert (layout.v2, layout.v1, layout.hybrid) == (tmp_path, {}, False)
    assert (layout.place("memory"), layout.place("cpu")) == ("v2", "v2")
    assert layout.describe() == "cgroup2 memory,cpu"


def test_probe_follows_a_mounted_subtree_and_escaped_names(tmp_path: Path) -> None:
    """In a container the hierarchy is mounted from a sub-cgroup; mountinfo escapes spaces."""
    point = tmp_path / "my cgroups"
    (point / "sub").mkdir(parents=True)
    escaped = str(point).replace(" ", "\\040")
    layout = probe(
        mountinfo=mountinfo(("/docker/abc", escaped, "cgroup", "rw,memory")),
        proc_cgroup="3:memory:/docker/abc/sub\n",
    )
    assert layout is not None
    assert layout.v1 == {"memory": point / "sub"}
    assert layout.describe() == "v1 memory (no cpu limits)"


def test_probe_without_cgroups_is_none() -> None:
    assert probe(mountinfo=mountinfo(("/", "/", "ext4", "rw")), proc_cgroup="0::/\n") is None


def test_pure_v2_enables_the_controllers_and_writes_the_limits(tmp_path: Path) -> None:
    """The write plan of pure v2, on a tree standing in for cgroupfs (no such kernel here)."""
    (tmp_path / "cgroup.subtree_control").write_text("cpu\n")
    layout = Layout(v2=tmp_path, v2_controllers=frozenset({"cpu", "memory", "pids"}))
    cgroup = create(layout, "lab-n1", "web-g3", memory_bytes=256 << 20, cpu_millis=1500)
    assert cgroup == Cgroup(v2=tmp_path / TOP / "lab-n1" / "web-g3")
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory"  # cpu was on
    for parent in (tmp_path / TOP, tmp_path / TOP / "lab-n1"):
        assert (parent / "cgroup.subtree_control").read_text() == "+memory +cpu"
    leaf = tmp_path / TOP / "lab-n1" / "web-g3"
    assert (leaf / "memory.max").read_text() == str(256 << 20)
    assert (leaf / "cpu.max").read_text() == "150000 100000"
    assert cgroup.procs_files() == [str(leaf / "cgroup.procs")]


def test_hybrid_writes_the_limits_to_v1(tmp_path: Path) -> None:
    layout = Layout(
        v2=tmp_path / "u", v1={"memory": tmp_path / "m", "cpu": tmp_path / "c"}, hybrid=True
    )
    cgroup = create(layout, "s", "db-g1", memory_bytes=1 << 30, cpu_millis=1)
    leaf = Path(TOP, "s", "db-g1")
    assert cgroup.dirs == (tmp_path / "u" / leaf, tmp_path / "m" / leaf, tmp_path / "c" / leaf)
    assert (tmp_path / "m" / leaf / "memory.limit_in_bytes").read_text() == str(1 << 30)
    assert (tmp_path / "c" / leaf / "cpu.cfs_period_us").read_text() == "100000"
    assert (tmp_path / "c" / leaf / "cpu.cfs_quota_us").read_text() == "1000"  # the minimum
    assert not (tmp_path / "u" / TOP / "cgroup.subtree_control").exists()
    assert not list((tmp_path / "u" / leaf).iterdir())  # the v2 cgroup only kills


@pytest.fixture
def scope() -> Iterator[str]:
    """A scope of this test alone; nothing of it may be left afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    if LAYOUT is not None:
        left = cleanup_scope(name, LAYOUT)
        dirs = [b / TOP / name for b in LAYOUT.bases() if (b / TOP / name).exists()]
        assert (left, dirs) == (0, []), "the test left cgroups behind"


def token() -> str:
    """A unique sleep duration, to find the test's own processes by their command line."""
    return f"{30 + uuid.uuid4().int % 10_000 / 1000:.3f}"


def pids_of(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if mark.encode() in argv:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.005)


def start_tree(cgroup: Cgroup) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A shell that joins ``cgroup`` and then forks a child and a setsid'd one."""
    first, second = token(), token()
    script = f'for f in "$@"; do echo $$ > "$f"; done; setsid sleep {first} & sleep {second} & wait'
    shell = subprocess.Popen(["sh", "-c", script, "sh", *cgroup.procs_files()])
    wait_until(lambda: pids_of(first) and pids_of(second), "the tree runs")
    pids = [shell.pid, *pids_of(first), *pids_of(second)]
    assert set(pids) <= set(cgroup.pids())
    return shell, pids


@needs_cgroups
def test_the_kernel_takes_the_limits(scope: str) -> None:
    assert LAYOUT is not None
    cgroup = create(LAYOUT, scope, "lim-g1", memory_bytes=96 << 20, cpu_millis=250)
    try:
        by_name = {d.parent.parent.parent: d for d in cgroup.dirs}
        if LAYOUT.place("memory") == "v1":
            memory = by_name[LAYOUT.v1["memory"]]
            assert (memory / "memory.limit_in_bytes").read_text() == f"{96 << 20}\n"
        if LAYOUT.place("cpu") == "v1":
            cpu = by_name[LAYOUT.v1["cpu"]]
            assert (cpu / "cpu.cfs_quota_us").read_text() == "25000\n"
            assert (cpu / "cpu.cfs_period_us").read_text() == "100000\n"
        if LAYOUT.v2 is not None and LAYOUT.place("cpu") == "v2":
            assert (by_name[LAYOUT.v2] / "cpu.max").read_text() == "25000 100000\n"
    finally:
        assert cgroup.remove()


@needs_cgroups
@pytest.mark.parametrize("use_kill_file", [True, False], ids=["cgroup.kill", "freeze+kill"])
def test_kill_takes_the_whole_tree(scope: str, use_kill_file: bool) -> None:
    assert LAYOUT is not None
    cgroup = create(LAYOUT, scope, "tree-g1")
    shell, pids = start_tree(cgroup)
    cgroup.kill(use_kill_file=use_kill_file)
    assert shell.wait(timeout=5) == -9
    wait_until(lambda: not cgroup.populated(), "the cgroup is empty")
    assert not [pid for pid in pids if alive(pid)]
    assert cgroup.remove()
    assert not any(d.exists() for d in cgroup.dirs)


@needs_cgroups
def test_a_populated_cgroup_is_not_made_twice_and_an_empty_one_afresh(scope: str) -> None:
    assert LAYOUT is not None
    cgroup = create(LAYOUT, scope, "twice-g1")
    shell, _ = start_tree(cgroup)
    with pytest.raises(FileExistsError):
        create(LAYOUT, scope, "twice-g1")
    cgroup.kill()
    shell.wait(timeout=5)
    wait_until(lambda: not cgroup.populated(), "the cgroup is empty")
    assert create(LAYOUT, scope, "twice-g1") == cgroup
    assert cgroup.remove()


@needs_cgroups
def test_cleanup_scope_kills_and_removes_the_leftovers(scope: str) -> None:
    assert LAYOUT is not None
    trees = [start_tree(create(LAYOUT, scope, f"left-g{g}")) for g in (1, 2)]
    other = f"{scope}-other"
    kept = create(LAYOUT, other, "kept-g1")
    try:
        assert cleanup_scope(scope, LAYOUT) == 2
        for shell, pids in trees:
            assert shell.wait(timeout=5) == -9
            assert not [pid for pid in pids if alive(pid)]
        assert not [b for b in LAYOUT.bases() if (b / TOP / scope).exists()]
        assert all(d.is_dir() for d in kept.dirs)  # another scope is not touched
        assert cleanup_scope(scope, LAYOUT) == 0
    finally:
        assert cleanup_scope(other, LAYOUT) == 1


def test_cleanup_scope_without_cgroups_removes_nothing(tmp_path: Path) -> None:
    layout = Layout(v2=tmp_path)
    assert cleanup_scope("nothing-here", layout) == 0
