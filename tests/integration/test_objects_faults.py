"""Object storage under faults, on a lab of its own: damaged shards, a writer killed half
way, the collector, nodes killed (m of them, then one more), every agent restarted, a
swapped disk, and (as root) full disks.

Each test starts by booting whatever an earlier test left killed, so each can run alone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.data.objects import ObjectClient
from agent.errors import NotEnoughShards, RackError
from agent.lab import Lab
from agent.lab import rack as lab_rack
from agent.objects.format import ObjectMeta
from agent.objects.layout import CHUNK_SIZE, INLINE_MAX
from agent.store.identity import IDENTITY_FILE
from tests.conftest import needs_root
from tests.helpers import wait_until
from tests.integration.objects_helpers import (
    MIB,
    content,
    create_pool,
    disk_health,
    disk_of,
    error_line,
    get_bytes,
    ok,
    put_bytes,
    rack_bin,
    read_all,
    restore,
    shard_files,
    shard_of,
    stat_json,
    wait_map_says,
    with_objects,
)

pytestmark = pytest.mark.integration
POOL = "f"
NODES = ["n1", "n2", "n3", "n4", "n5"]
ORPHAN_AFTER = 10.0
"""The lab's orphan grace is 60 s; this lab's is short enough to watch (and still longer
than any put its tests make)."""
GC = lab_rack.LAB_STORAGE
COLLECT_WITHIN = GC["gc_superseded_after"] + GC["gc_interval"] + 25.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("faults") / "lab")
    with pytest.MonkeyPatch.context() as mp:  # read once, when the node configs are written
        mp.setitem(lab_rack.LAB_STORAGE, "gc_orphan_after", ORPHAN_AFTER)
        lab.up(5, "loopback", timeout=60.0)
    try:
        create_pool(lab, POOL, 3, 2, "--pg-num", "16")
        yield lab
    finally:
        lab.down()


def write_objects(lab: Lab, prefix: str) -> dict[str, bytes]:
    """Objects of every kind: empty, inline, just past inline, one chunk, three chunks."""
    sizes = {
        "empty": 0,
        "inline": 1000,
        "edge": INLINE_MAX + 1,
        "one": CHUNK_SIZE,
        "three": 3 * CHUNK_SIZE - 5,
    }
    objects = {
        f"{prefix}-{kind}": content(len(prefix) * 1000 + i, size)
        for i, (kind, size) in enumerate(sizes.items())
    }
    for name, data in objects.items():
        put_bytes(lab, POOL, name, data)
    return objects


def versions_of(lab: Lab, names: list[str]) -> dict[str, str]:
    async def heads(oc: ObjectClient) -> list[ObjectMeta]:
        return await asyncio.gather(*(oc.head(POOL, name) for name in names))

    return {m.name: m.version.hex() for m in with_objects(lab, heads)}


# ---- damage ----------------------------------------------------------------------------


def test_damaged_shards_are_rebuilt_reported_and_counted(lab: Lab, tmp_path: Path) -> None:
    restore(lab)
    data = content(31, 3 * CHUNK_SIZE - 1000)
    version = put_bytes(lab, POOL, "damaged", data)
    assert stat_json(lab, f"{POOL}/damaged")["missing_shards"] == []
    files = shard_files(lab, POOL, "damaged", version)
    assert len(files) == 3 * 5
    before = disk_health(lab)

    # two shards of chunk 0 (as many as m allows) and one of chunk 1; data shards, so
    # a healthy read would have used them
    flipped, cut, gone = shard_of(files, 0, 0), shard_of(files, 0, 1), shard_of(files, 1, 2)
    size = flipped.stat().st_size
    with open(flipped, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.truncate(cut, cut.stat().st_size // 2)
    gone.unlink()

    proc = ok(rack_bin(lab, "get", f"{POOL}/damaged"))
    assert proc.stdout == data
    warnings = proc.stderr.decode().splitlines()
    assert len(warnings) == 3, warnings
    assert all(w.startswith("rack: warning: shard ") and "is damaged" in w for w in warnings)
    by_shard = {(w.split()[6], w.split()[3]): w for w in warnings}  # (chunk, position)
    assert set(by_shard) == {("0", "0"), ("0", "1"), ("1", "2")}
    assert "fails its checksum" in by_shard["0", "0"]
    assert "bytes long, not" in by_shard["0", "1"]
    assert "has no file" in by_shard["1", "2"]

    out = tmp_path / "damaged.bin"
    ok(rack_bin(lab, "get", f"{POOL}/damaged", str(out)))
    assert out.read_bytes() == data
    seen: list[str] = []
    read = with_objects(lab, lambda oc: read_all(oc, POOL, "damaged"), on_damage=seen.append)
    assert read == data
    assert len(seen) == 3

    def counted() -> bool:
        now = disk_health(lab)
        return all(now[disk_of(f)]["errors"] > before[disk_of(f)]["errors"] for f in (flipped, cut))

    wait_until(counted, 10, "the damaged disks' error counts rise in rack status")


def lose_last_chunk(lab: Lab, name: str) -> bytes:
    """A 3-chunk object whose last chunk lost m+1 = 3 shards: it cannot be read."""
    data = content(len(name), 3 * CHUNK_SIZE - 7)
    files = shard_files(lab, POOL, name, put_bytes(lab, POOL, name, data))
    for position in range(3):
        shard_of(files, 2, position).unlink()
    return data


def test_a_pool_of_the_isal_plugin_reads_back_healthy_and_degraded(lab: Lab) -> None:
    """isal shards are pyeclib fragments (header + payload): even a healthy read decodes."""
    pytest.importorskip("pyeclib", reason="the isal plugin needs pyeclib (a dev dependency)")
    ok(rack_bin(lab, "pool", "create", "pisal", "--k", "3", "--m", "2", "--plugin", "isal"))
    data = content(47, CHUNK_SIZE + 4099)
    ok(rack_bin(lab, "put", "pisal/obj", "-", stdin=data))
    assert stat_json(lab, "pisal/obj")["code"] == {"k": 3, "m": 2, "plugin": "isal"}
    assert ok(rack_bin(lab, "get", "pisal/obj")).stdout == data
    lost = [shard_of(shard_files(lab, "pisal", "obj"), chunk, 0) for chunk in range(2)]
    for shard in lost:
        shard.unlink()
    assert ok(rack_bin(lab, "get", "pisal/obj")).stdout == data


def test_a_chunk_beyond_repair_fails_the_read_and_leaves_no_file(lab: Lab, tmp_path: Path) -> None:
    restore(lab)
    lose_last_chunk(lab, "lost")
    target = tmp_path / "lost.bin"
    line = error_line(rack_bin(lab, "get", f"{POOL}/lost", str(target)))
    assert line.startswith(f"rack: chunk 2 of {POOL}/lost has 2 readable shards, 3 are needed")
    assert list(tmp_path.iterdir()) == []  # neither lost.bin nor lost.bin.part
    with pytest.raises(NotEnoughShards):
        get_bytes(lab, POOL, "lost")


def test_a_chunk_beyond_repair_writes_nothing_to_stdout(lab: Lab) -> None:
    restore(lab)
    lose_last_chunk(lab, "lost-stdout")
    proc = rack_bin(lab, "get", f"{POOL}/lost-stdout")
    assert proc.returncode == 1
    assert len(proc.stdout) == 0, f"{len(proc.stdout)} bytes on stdout from a failed get"


# ---- an interrupted writer and the collector -------------------------------------------


@dataclass
class Superseded:
    """Old versions whose grace started when the class did: one replaced, one removed."""

    old_files: list[Path]
    new_files: list[Path]
    newer: bytes
    kept_within_grace: bool


@pytest.fixture(scope="class")
def superseded(lab: Lab) -> Superseded:
    """Made before the killed writer's test, so both graces run out at the same time."""
    restore(lab)
    v1 = put_bytes(lab, POOL, "replaced", content(51, CHUNK_SIZE + 1))
    gone = put_bytes(lab, POOL, "removed", content(52, CHUNK_SIZE + 2))
    old_files = shard_files(lab, POOL, "replaced", v1) + shard_files(lab, POOL, "removed", gone)
    newer = content(53, 2 * CHUNK_SIZE + 3)
    v2 = put_bytes(lab, POOL, "replaced", newer)
    ok(rack_bin(lab, "rm", f"{POOL}/removed"))
    new_files = shard_files(lab, POOL, "replaced", v2)
    # within the grace, a reader of the old version would still find its shards
    kept = len(old_files) == 2 * 2 * 5 and all(f.exists() for f in old_files)
    return Superseded(old_files, new_files, newer, kept)


@pytest.mark.usefixtures("superseded")
class TestCollector:
    def test_a_writer_killed_half_way_leaves_the_previous_version(self, lab: Lab) -> None:
        restore(lab)
        name = "interrupted"
        old = content(41, 6 * MIB)
        new = content(42, 20 * MIB)
        v0 = put_bytes(lab, POOL, name, old)
        old_files = set(shard_files(lab, POOL, name, v0))
        assert len(old_files) == 2 * 5

        fed = 3 * CHUNK_SIZE  # three chunks in, then the writer waits for more that never comes
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "put", f"{POOL}/{name}", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "RACK_CONF": str(lab.client_conf)},
        )
        stop = threading.Event()

        def feed() -> None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(new[:fed])
                proc.stdin.flush()
                stop.wait(60)
                proc.stdin.write(new[fed:])
            except (BrokenPipeError, ValueError):
                pass

        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            wait_until(
                lambda: len(set(shard_files(lab, POOL, name)) - old_files) >= 3 * 5,
                30,
                "the writer stored every shard of its first three chunks",
            )
            assert proc.poll() is None, "the writer finished before it was killed"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            feeder.join(10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        assert proc.returncode == -signal.SIGKILL

        got = ok(rack_bin(lab, "get", f"{POOL}/{name}"))
        assert got.stdout == old
        assert stat_json(lab, f"{POOL}/{name}")["version"] == v0
        orphans = set(shard_files(lab, POOL, name)) - old_files
        assert len(orphans) == 3 * 5
        assert {f.name.split(".")[1] for f in orphans} != {v0}

        # no committed version names them: the collector removes them after the grace
        wait_until(
            lambda: not any(f.exists() for f in orphans),
            ORPHAN_AFTER + GC["gc_interval"] + 25.0,
            "the killed writer's shards are collected",
        )
        assert set(shard_files(lab, POOL, name)) == old_files
        assert get_bytes(lab, POOL, name) == old

    def test_superseded_and_removed_versions_are_collected(
        self, lab: Lab, superseded: Superseded
    ) -> None:
        assert superseded.kept_within_grace
        assert len(superseded.new_files) == 3 * 5
        wait_until(
            lambda: not any(f.exists() for f in superseded.old_files),
            COLLECT_WITHIN,
            "the replaced and the removed versions' shards are collected",
        )
        assert all(f.exists() for f in superseded.new_files)
        assert shard_files(lab, POOL, "replaced") == superseded.new_files
        assert shard_files(lab, POOL, "removed") == []
        assert get_bytes(lab, POOL, "replaced") == superseded.newer


# ---- nodes down ------------------------------------------------------------------------


@pytest.fixture(scope="class")
def two_down(lab: Lab) -> Iterator[dict[str, bytes]]:
    """Objects of every kind written, then n4 and n5 (m = 2 hosts) killed and voted down."""
    restore(lab)
    objects = write_objects(lab, "kill")
    try:
        lab.kill("n4")
        lab.kill("n5")
        wait_map_says(lab, ["n4", "n5"], "down")
        yield objects
    finally:
        restore(lab)


class TestNodesDown:
    def test_every_object_reads_back_with_m_nodes_down(
        self, lab: Lab, two_down: dict[str, bytes]
    ) -> None:
        for name, data in two_down.items():
            proc = ok(rack_bin(lab, "get", f"{POOL}/{name}"))
            assert proc.stdout == data, name
        assert stat_json(lab, f"{POOL}/kill-three")["size"] == len(two_down["kill-three"])
        # writes need k+1 = 4 copies; with 3 hosts up they are refused, and say why
        line = error_line(rack_bin(lab, "put", f"{POOL}/new", "-", stdin=b"x"))
        assert "4 are needed" in line and "nothing was changed" in line, line

    def test_listing_with_m_nodes_down(self, lab: Lab, two_down: dict[str, bytes]) -> None:
        entries = with_objects(lab, lambda oc: oc.ls(POOL, "kill-"))
        assert [e.name for e in entries] == sorted(two_down)

    def test_one_more_node_down_reads_fail_cleanly(
        self, lab: Lab, two_down: dict[str, bytes], tmp_path: Path
    ) -> None:
        lab.kill("n3")  # one more than m: no longer enough to read
        # (n3 cannot be voted down by 2 of 5 nodes, so each read waits out its timeout:
        # the CLI reads two, the in-process client all of them at once)
        target = tmp_path / "out.bin"
        for args in (("get", f"{POOL}/kill-three"), ("get", f"{POOL}/kill-inline", str(target))):
            line = error_line(rack_bin(lab, *args))
            assert "are needed to read it" in line, line
        assert list(tmp_path.iterdir()) == []  # no FILE, no FILE.part

        async def read_every(oc: ObjectClient) -> list[bytes | BaseException]:
            reads = (read_all(oc, POOL, name) for name in two_down)
            return await asyncio.gather(*reads, return_exceptions=True)

        for name, got in zip(two_down, with_objects(lab, read_every), strict=True):
            assert isinstance(got, RackError), (name, got)  # never bytes, right or wrong
            assert "needed" in str(got), got

        restore(lab)  # and once they are back, all is well again
        for name, data in two_down.items():
            assert get_bytes(lab, POOL, name) == data, name


def test_every_agent_restarted_keeps_every_acknowledged_object(lab: Lab) -> None:
    restore(lab)
    objects = write_objects(lab, "reboot")
    versions = versions_of(lab, list(objects))
    for node in NODES:
        lab.kill(node)
    for node in NODES:
        lab.boot(node, wait=False)  # the monitors need each other to form a quorum
    lab.wait_converged(60)
    wait_map_says(lab, NODES, "up")

    for name, data in objects.items():
        proc = ok(rack_bin(lab, "get", f"{POOL}/{name}"))
        assert proc.stdout == data and proc.stderr == b"", name
    assert versions_of(lab, list(objects)) == versions
    listed = ok(rack_bin(lab, "ls", POOL, "--prefix", "reboot-")).stdout.decode().splitlines()
    assert [line.split()[-1] for line in listed] == sorted(objects)
    after = content(61, CHUNK_SIZE + 9)
    ok(rack_bin(lab, "put", f"{POOL}/after-reboot", "-", stdin=after))
    assert ok(rack_bin(lab, "get", f"{POOL}/after-reboot")).stdout == after


# ---- a swapped disk --------------------------------------------------------------------


class Swapped:
    """n5 booted with n4's disk0 identity file copied over its own disk0's."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.disk = lab.node_dir("n5") / "disk0"
        self.other = lab.node_dir("n4") / "disk0"
        self.log = lab.node_dir("n5") / "agent.log"
        self.log_from = 0
        self.objects: dict[str, bytes] = {}


@pytest.fixture(scope="class")
def swapped(lab: Lab) -> Iterator[Swapped]:
    restore(lab)
    sw = Swapped(lab)
    sw.objects = write_objects(lab, "swap")
    ident = sw.disk / IDENTITY_FILE
    saved = ident.read_bytes()
    try:
        lab.kill("n5")
        sw.log_from = sw.log.stat().st_size
        shutil.copyfile(sw.other / IDENTITY_FILE, ident)
        lab.boot("n5", timeout=60.0)
        yield sw
    finally:
        lab.kill("n5")
        ident.write_bytes(saved)
        restore(lab)


class TestSwappedDisk:
    def test_the_disk_is_refused_and_the_rest_keeps_working(self, swapped: Swapped) -> None:
        lab, disk, other = swapped.lab, swapped.disk, swapped.other
        text = swapped.log.read_bytes()[swapped.log_from :].decode(errors="replace")
        refused = [line for line in text.splitlines() if f"disk {disk} is refused" in line]
        assert len(refused) == 1, text[-2000:]
        assert f"belongs to node n4's disk {other}" in refused[0]
        assert "swapped or copied" in refused[0]

        def reported() -> bool:
            health = disk_health(lab)
            return health[str(disk)]["ok"] is False and health[str(disk)]["problem"] is not None

        wait_until(reported, 10, "rack status reports the refused disk")
        health = disk_health(lab)
        problem = health[str(disk)]["problem"]
        assert problem.startswith(f"disk {disk} belongs to node n4's disk {other}"), problem
        assert problem.endswith("it was swapped or copied, so it is refused"), problem
        assert health[str(lab.node_dir("n5") / "disk1")]["ok"] is True
        assert all(h["ok"] for path, h in health.items() if path != str(disk))

        # the leader marks the refused disk's OSD down, so clients stop asking it
        def marked_down() -> bool:
            with lab.client() as client:
                osds = client.cluster_map().osds.values()
            states = {o.path: o.state for o in osds if o.node == "n5"}
            return (
                states.get(str(disk)) == "down" and states.get(str(disk.parent / "disk1")) == "up"
            )

        wait_until(marked_down, 10, "the map marks the refused disk's OSD down")

        # the rest keeps working: old objects read back (rebuilt where the disk held a
        # shard), new ones are stored and read back
        for name, data in swapped.objects.items():
            assert ok(rack_bin(lab, "get", f"{POOL}/{name}")).stdout == data, name
        fresh = content(71, 2 * CHUNK_SIZE + 1)
        ok(rack_bin(lab, "put", f"{POOL}/after-swap", "-", stdin=fresh))
        assert ok(rack_bin(lab, "get", f"{POOL}/after-swap")).stdout == fresh
        assert stat_json(lab, f"{POOL}/after-swap")["size"] == len(fresh)
        # and the refused disk was not written to
        assert not any(disk in f.parents for f in shard_files(lab, POOL, "after-swap"))

    def test_listing_with_the_refused_disk(self, swapped: Swapped) -> None:
        # the refused disk's error must come back before some other OSD's answer to
        # break a listing; most tries it does, so ten tries all but always meet it
        for _ in range(10):
            entries = with_objects(swapped.lab, lambda oc: oc.ls(POOL, "swap-"))
            assert [e.name for e in entries] == sorted(swapped.objects)


# ---- full disks (root: tmpfs disks) ----------------------------------------------------


def names_in(lab: Lab, pool: str) -> set[str]:
    lines = ok(rack_bin(lab, "ls", pool)).stdout.decode().splitlines()
    return {line.split()[-1] for line in lines}


@pytest.fixture
def full_lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "full")
    lab.up(5, "loopback", timeout=60.0, disk_mib=24)
    try:
        create_pool(lab, "p", 3, 2, "--pg-num", "16")
        yield lab
    finally:
        lab.down()


@needs_root
def test_full_disks_refuse_writes_cleanly_and_keep_what_was_acknowledged(
    full_lab: Lab, tmp_path: Path
) -> None:
    lab = full_lab
    stored: dict[str, bytes] = {}
    failed = None
    for i in range(100):  # 10 disks of 24 MiB hold ~30 objects of 4 MiB at 3+2
        name = f"fill-{i}"
        data = content(100 + i, 4 * MIB)
        try:
            put_bytes(lab, "p", name, data)
        except RackError:
            failed = name
            break
        stored[name] = data
    assert failed is not None, "100 objects of 4 MiB fitted on 240 MiB of disks"
    assert len(stored) >= 5

    # the same name again through the CLI: the same placement group, still full
    src = tmp_path / "four.bin"
    src.write_bytes(content(999, 4 * MIB))
    line = error_line(rack_bin(lab, "put", f"p/{failed}", str(src)))
    assert "disk" in line and any(w in line for w in ("full", "free", "no room")), line

    for name, data in stored.items():
        assert get_bytes(lab, "p", name) == data, name
    listed = names_in(lab, "p")
    assert failed not in listed  # nothing half-visible
    assert error_line(rack_bin(lab, "get", f"p/{failed}")) == f"rack: there is no object p/{failed}"

    small = rack_bin(lab, "put", "p/small", "-", stdin=b"still room for metadata?")
    listed = names_in(lab, "p")
    if small.returncode == 0:
        assert "small" in listed
        assert ok(rack_bin(lab, "get", "p/small")).stdout == b"still room for metadata?"
    else:
        error_line(small)
        assert "small" not in listed
    assert set(stored) <= listed
