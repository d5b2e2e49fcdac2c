"""Object storage on a healthy loopback lab: round trips through the real ``rack`` CLI,
names as keys, the CLI's contract (stdout, stderr, exit codes), concurrent writers of
one name, and pools whose failure domain is the OSD."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli.main import main as rack_main
from agent.ec.isal_lib import choose
from agent.errors import RackError
from agent.lab import Lab
from agent.objects.layout import CHUNK_SIZE, INLINE_MAX
from tests.helpers import wait_until
from tests.integration.objects_helpers import (
    MIB,
    content,
    create_pool,
    disk_of,
    disks,
    error_line,
    get_bytes,
    ok,
    put_bytes,
    rack_bin,
    read_all,
    shard_files,
    shard_of,
    stat_json,
    with_objects,
)

pytestmark = pytest.mark.integration
CHOICE = choose()
POOL = "p"
STORED = re.compile(r"^stored (\S+?): (\d+) bytes, version ([0-9a-f]{32}) \((.*)\)$")


@pytest.fixture(scope="module")
def lab(loopback_lab: Lab) -> Iterator[Lab]:
    """The module's 5-node lab with a 3+2 pool of 16 PGs."""
    create_pool(loopback_lab, POOL, 3, 2, "--pg-num", "16")
    yield loopback_lab


def put_file(lab: Lab, path: str, data: bytes, tmp: Path) -> re.Match[str]:
    src = tmp / "src"
    src.write_bytes(data)
    out = ok(rack_bin(lab, "put", path, str(src))).stdout.decode()
    match = STORED.match(out.strip())
    assert match is not None, out
    return match


# ---- the codec's kernel ------------------------------------------------------------


def test_every_node_reports_and_logged_its_codec_kernel_once(lab: Lab) -> None:
    """The agents chose their kernel at start, logged it once, and heartbeat it."""
    want = CHOICE.name  # this process searched the same way, with the same environment

    def reported() -> bool:
        status = json.loads(ok(rack_bin(lab, "status", "--json")).stdout)
        return sorted(n["ec_kernel"] for n in status["nodes"]) == [want] * 5

    wait_until(reported, 10, f"every node reports the {want} kernel")
    for node in ("n1", "n2", "n3", "n4", "n5"):  # the first test: each agent started once
        log = (lab.node_dir(node) / "agent.log").read_text(encoding="utf-8", errors="replace")
        lines = [line for line in log.splitlines() if "erasure-code kernel:" in line]
        assert len(lines) == 1, lines
        assert f"erasure-code kernel: {want}" in lines[0]


# ---- round trips -----------------------------------------------------------------------

SIZES = {
    "empty": 0,
    "one-byte": 1,
    "inline-max-1": INLINE_MAX - 1,
    "inline-max": INLINE_MAX,
    "inline-max+1": INLINE_MAX + 1,
    "chunk-1": CHUNK_SIZE - 1,
    "chunk": CHUNK_SIZE,
    "chunk+1": CHUNK_SIZE + 1,
    "2chunks-1": 2 * CHUNK_SIZE - 1,
    "2chunks": 2 * CHUNK_SIZE,
    "2chunks+1": 2 * CHUNK_SIZE + 1,
    "3chunks": 3 * CHUNK_SIZE,
}


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_round_trip_of_every_size(lab: Lab, tmp_path: Path, size: int) -> None:
    data = content(size, size)
    path = f"{POOL}/size-{size}"
    stored = put_file(lab, path, data, tmp_path)
    inline = size <= INLINE_MAX
    chunks = 0 if inline else -(-size // CHUNK_SIZE)
    assert stored.group(1) == path and int(stored.group(2)) == size
    assert stored.group(4) == ("inline" if inline else f"{chunks} chunks")

    got = rack_bin(lab, "get", path)
    assert ok(got).stdout == data
    assert got.stderr == b""

    meta = stat_json(lab, path)
    assert meta["size"] == size
    assert meta["version"] == stored.group(3)
    assert meta["inline"] is inline
    assert meta["chunks"] == chunks
    assert meta["chunk_size"] == (0 if inline else CHUNK_SIZE)
    assert meta["code"] == {"k": 3, "m": 2, "plugin": "rs"}
    assert meta["missing_shards"] == []
    # an inline object has no shard files; a chunked one has k+m per chunk
    assert len(shard_files(lab, POOL, f"size-{size}")) == 5 * chunks


WEIRD_NAMES = [
    "dir/sub/file.txt",
    "ünï cødé ☃",
    "a b.c",
    "../../etc/passwd",
    "..",
    ".",
    "/leading-slash",
    "trailing/",
    "é" * 512,  # 1024 bytes of UTF-8: the longest name
]


def test_names_are_keys_never_paths(lab: Lab, tmp_path: Path) -> None:
    passwd = Path("/etc/passwd")
    before = passwd.stat().st_mtime_ns if passwd.exists() else None
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for i, name in enumerate(WEIRD_NAMES):
        data = content(1000 + i, 100 + i * 7000)  # inline for the first three, then chunked
        ok(rack_bin(lab, "put", f"{POOL}/{name}", "-", stdin=data, cwd=cwd))
        assert get_bytes(lab, POOL, name) == data, name
    big = content(77, CHUNK_SIZE + 5)
    ok(rack_bin(lab, "put", f"{POOL}/../../etc/passwd.big", "-", stdin=big, cwd=cwd))
    assert ok(rack_bin(lab, "get", f"{POOL}/../../etc/passwd.big", cwd=cwd)).stdout == big

    listed = json.loads(ok(rack_bin(lab, "ls", POOL, "--json")).stdout)
    names = {e["name"] for e in listed}
    assert set(WEIRD_NAMES) | {"../../etc/passwd.big"} <= names
    # a name is hashed to find its files: nothing named after it exists anywhere
    assert list(cwd.iterdir()) == []
    for root in [lab.dir, lab.dir.parent, *disks(lab)]:
        stray = [p for p in root.rglob("*") if p.name in ("passwd", "passwd.big", "etc")]
        assert stray == [], stray
    assert (passwd.stat().st_mtime_ns if passwd.exists() else None) == before
    for disk in disks(lab):
        assert sorted(p.name for p in disk.iterdir()) == [
            "RACKCLOUD-DISK.json",
            "incoming",
            "meta",
            "shards",
        ]
        for f in (disk / "shards").rglob("*"):
            assert f.is_dir() or re.fullmatch(r"[0-9a-f]{32}\.[0-9a-f]{32}\.\d+\.\d+", f.name)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        (f"{POOL}/", "an object name is 1 to 1024 bytes of UTF-8, not 0 bytes"),
        (f"{POOL}/" + "x" * 1025, "an object name is 1 to 1024 bytes of UTF-8, not 1025 bytes"),
        (f"{POOL}/" + "é" * 513, "not 1026 bytes"),
        (POOL, "names no object: write POOL/NAME"),
        ("nosuchpool/x", "there is no pool 'nosuchpool'"),
        ("Bad_Pool/x", "pool name 'Bad_Pool' is not valid"),
    ],
    ids=["empty", "1025-bytes", "1026-bytes-utf8", "no-slash", "no-pool", "bad-pool"],
)
def test_bad_names_are_refused_in_one_sentence(
    lab: Lab, tmp_path: Path, path: str, words: str
) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"payload")
    commands = [("put", path, str(src)), ("get", path)]
    if path == f"{POOL}/":
        commands += [("stat", path), ("rm", path), ("get", path, str(tmp_path / "out"))]
    for args in commands:
        line = error_line(rack_bin(lab, *args))
        assert words in line, (args, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_a_nul_in_a_name_is_refused(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # argv cannot carry a NUL, so this runs the CLI in-process
    monkeypatch.setenv("RACK_CONF", str(lab.client_conf))
    src = tmp_path / "src"
    src.write_bytes(b"payload")
    for argv in (["put", f"{POOL}/a\0b", str(src)], ["get", f"{POOL}/a\0b"]):
        assert rack_main(argv) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert err.strip() == "rack: an object name may not contain a NUL character"
    with pytest.raises(RackError, match="NUL"):
        put_bytes(lab, POOL, "a\0b", b"x")
    listed = json.loads(ok(rack_bin(lab, "ls", POOL, "--prefix", "a", "--json")).stdout)
    assert all("\0" not in e["name"] for e in listed)


# ---- the CLI's outputs -----------------------------------------------------------------


@pytest.mark.parametrize("size", [5000, 2 * CHUNK_SIZE + 3], ids=["inline", "chunked"])
def test_get_to_stdout_and_to_a_file(lab: Lab, tmp_path: Path, size: int) -> None:
    data = content(size + 1, size)
    path = f"{POOL}/get-{size}"
    ok(rack_bin(lab, "put", path, "-", stdin=data))
    for args in (("get", path), ("get", path, "-")):
        proc = ok(rack_bin(lab, *args))
        assert proc.stdout == data and proc.stderr == b""
    target = tmp_path / "out.bin"
    target.write_bytes(b"old contents, replaced")
    proc = ok(rack_bin(lab, "get", path, str(target)))
    assert proc.stdout == b"" and proc.stderr == b""
    assert target.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no out.bin.part


def test_get_into_a_pipe_closed_early(lab: Lab) -> None:
    ok(rack_bin(lab, "put", f"{POOL}/piped", "-", stdin=content(8, CHUNK_SIZE + 1)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "get", f"{POOL}/piped"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "RACK_CONF": str(lab.client_conf)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(10)) == 10  # like 'rack get ... | head -c 10'
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(30)
    proc.stderr.close()
    assert "None" not in err, err
    assert proc.returncode == 0, err  # main() treats a closed pipe as a normal end


def test_stat_json_and_text(lab: Lab, tmp_path: Path) -> None:
    data = content(5, CHUNK_SIZE + 100)
    stored = put_file(lab, f"{POOL}/stat-me", data, tmp_path)
    meta = stat_json(lab, f"{POOL}/stat-me")
    assert {
        "pool",
        "name",
        "size",
        "version",
        "written_at",
        "inline",
        "code",
        "chunk_size",
        "chunks",
        "missing_shards",
        "checksum",
    } <= set(meta)
    assert (meta["pool"], meta["name"], meta["size"]) == (POOL, "stat-me", len(data))
    assert (meta["version"], meta["inline"], meta["chunks"]) == (stored.group(3), False, 2)
    assert re.fullmatch(r"xxh3-64:[0-9a-f]{16}", meta["checksum"])
    text = ok(rack_bin(lab, "stat", f"{POOL}/stat-me")).stdout.decode()
    assert f"{POOL}/stat-me: {len(data)} bytes" in text
    assert f"version {stored.group(3)}" in text and "2 chunks of 4.0M" in text


def test_ls_with_a_prefix_and_json(lab: Lab) -> None:
    objects = {"ls/a": 10, "ls/b/c": 20, "ls/b/d": INLINE_MAX + 1, "lsx": 1, "l": 2}
    versions = {}
    for name, size in objects.items():
        versions[name] = put_bytes(lab, POOL, name, content(len(name), size))

    rows = json.loads(ok(rack_bin(lab, "ls", POOL, "--prefix", "ls/", "--json")).stdout)
    assert [r["name"] for r in rows] == ["ls/a", "ls/b/c", "ls/b/d"]
    for r in rows:
        assert set(r) == {"name", "size", "version", "written_at"}
        assert r["size"] == objects[r["name"]] and r["version"] == versions[r["name"]]
    rows = json.loads(ok(rack_bin(lab, "ls", POOL, "--prefix", "ls/b/", "--json")).stdout)
    assert [r["name"] for r in rows] == ["ls/b/c", "ls/b/d"]
    assert json.loads(ok(rack_bin(lab, "ls", POOL, "--prefix", "nothing", "--json")).stdout) == []
    text = ok(rack_bin(lab, "ls", POOL, "--prefix", "ls")).stdout.decode().splitlines()
    assert [line.split()[-1] for line in text] == ["ls/a", "ls/b/c", "ls/b/d", "lsx"]
    assert text[0].split()[0] == "10"


def test_rm_then_get_fails_cleanly(lab: Lab, tmp_path: Path) -> None:
    path = f"{POOL}/doomed"
    first = put_file(lab, path, content(9, CHUNK_SIZE + 1), tmp_path).group(3)
    out = ok(rack_bin(lab, "rm", path)).stdout.decode()
    match = re.fullmatch(rf"removed {path} \(deletion version ([0-9a-f]{{32}})\)\n", out)
    assert match is not None and match.group(1) > first

    assert error_line(rack_bin(lab, "get", path)) == f"rack: there is no object {path}"
    assert error_line(rack_bin(lab, "stat", path)) == f"rack: there is no object {path}"
    assert error_line(rack_bin(lab, "rm", path)) == f"rack: there is no object {path}"
    target = tmp_path / "doomed.out"
    error_line(rack_bin(lab, "get", path, str(target)))
    assert not target.exists() and not (tmp_path / "doomed.out.part").exists()
    names = [r["name"] for r in json.loads(ok(rack_bin(lab, "ls", POOL, "--json")).stdout)]
    assert "doomed" not in names

    # the name can be used again, and sorts after the deletion
    again = put_file(lab, path, b"second life", tmp_path).group(3)
    assert again > match.group(1)
    assert ok(rack_bin(lab, "get", path)).stdout == b"second life"


def test_get_of_a_missing_object(lab: Lab, tmp_path: Path) -> None:
    target = tmp_path / "never.bin"
    for args in (("get", f"{POOL}/never"), ("get", f"{POOL}/never", "-")):
        assert error_line(rack_bin(lab, *args)) == f"rack: there is no object {POOL}/never"
    assert error_line(rack_bin(lab, "get", f"{POOL}/never", str(target))) == (
        f"rack: there is no object {POOL}/never"
    )
    assert list(tmp_path.iterdir()) == []  # neither never.bin nor never.bin.part
    missing_dir = tmp_path / "no" / "such" / "dir.bin"
    ok(rack_bin(lab, "put", f"{POOL}/exists", "-", stdin=b"here"))
    line = error_line(rack_bin(lab, "get", f"{POOL}/exists", str(missing_dir)))
    assert "cannot write" in line and str(missing_dir) in line


# ---- concurrent writers of one name ----------------------------------------------------

WRITERS = 4
SIZE = 5 * MIB


def test_concurrent_writers_one_winner_never_a_mix(lab: Lab) -> None:
    name = "contended"
    path = f"{POOL}/{name}"
    contents = [content(500 + i, SIZE) for i in range(WRITERS + 1)]
    by_digest = {hashlib.sha256(c).digest(): i for i, c in enumerate(contents)}
    first = put_bytes(lab, POOL, name, contents[0])

    seen: list[int] = []
    bad: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                data = with_objects(lab, lambda oc: read_all(oc, POOL, name))
            except RackError as exc:  # a healthy rack answers every read
                bad.append(f"read failed: {exc}")
                continue
            index = by_digest.get(hashlib.sha256(data).digest())
            if index is None:
                bad.append(f"read {len(data)} bytes that are none of the written contents")
            else:
                seen.append(index)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    procs: list[subprocess.Popen[bytes]] = []
    go = threading.Event()
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "agent.cli.main", "put", path, "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "RACK_CONF": str(lab.client_conf)},
            )
            for _ in range(WRITERS)
        ]
        # Each writer gets its first chunk and waits there, so every one has chosen its
        # version (none saw another's) and stored shards before any of them commits.
        feeders = [
            threading.Thread(target=_feed, args=(p, contents[i + 1], go))
            for i, p in enumerate(procs)
        ]
        for t in feeders:
            t.start()
        wait_until(
            lambda: len(_versions_on_disk(lab, name) - {first}) >= WRITERS,
            30,
            f"{WRITERS} writers stored shards of their first chunk",
        )
        go.set()
        for t in feeders:
            t.join(60)
        for p in procs:
            p.wait(timeout=60)
    finally:
        go.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        done.set()
        for t in readers:
            t.join(60)
    assert bad == []
    assert seen, "the readers read nothing while the writers ran"

    versions = {}
    for i, p in enumerate(procs):
        assert p.stdout is not None and p.stderr is not None
        out, err = p.stdout.read().decode(), p.stderr.read().decode()
        assert p.returncode == 0, err
        match = STORED.match(out.strip())
        assert match is not None, out
        versions[match.group(3)] = i + 1
    assert len(versions) == WRITERS and first not in versions
    winner = max(versions)  # fixed-width hex of (ts, writer): string order is version order
    assert stat_json(lab, path)["version"] == winner
    for _ in range(3):  # fresh clients, one after another, all agree
        assert ok(rack_bin(lab, "get", path)).stdout == contents[versions[winner]]


def _feed(proc: subprocess.Popen[bytes], data: bytes, go: threading.Event) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data[:CHUNK_SIZE])
        proc.stdin.flush()
        go.wait(60)
        proc.stdin.write(data[CHUNK_SIZE:])
    finally:
        proc.stdin.close()


def _versions_on_disk(lab: Lab, name: str) -> set[str]:
    return {f.name.split(".")[1] for f in shard_files(lab, POOL, name)}


# ---- failure domains -------------------------------------------------------------------


def test_failure_domain_osd_places_on_disks_not_hosts(lab: Lab, tmp_path: Path) -> None:
    out = ok(
        rack_bin(lab, "pool", "create", "posd", "--k", "4", "--m", "2", "--failure-domain", "osd")
    ).stdout.decode()
    assert "pool posd created (4+2, rs, 64 PGs, failure domain osd)" in out
    pools = {p["name"]: p for p in json.loads(ok(rack_bin(lab, "pool", "ls", "--json")).stdout)}
    assert pools["posd"] | {"id": 0} == {
        "name": "posd",
        "id": 0,
        "k": 4,
        "m": 2,
        "plugin": "rs",
        "pg_num": 64,
        "failure_domain": "osd",
        "min_size": 5,
    }
    data = content(46, 2 * CHUNK_SIZE + 17)
    ok(rack_bin(lab, "put", "posd/obj", "-", stdin=data))
    assert ok(rack_bin(lab, "get", "posd/obj")).stdout == data
    meta = stat_json(lab, "posd/obj")
    assert (meta["code"]["k"], meta["code"]["m"], meta["chunks"]) == (4, 2, 3)
    files = shard_files(lab, "posd", "obj")
    assert len(files) == 6 * 3
    for chunk in range(3):
        where = [disk_of(shard_of(files, chunk, position)) for position in range(6)]
        assert len(set(where)) == 6  # six disks...
        assert len({Path(d).parent.name for d in where}) < 6  # ...so some host holds two

    wide = rack_bin(
        lab, "pool", "create", "wide", "--k", "8", "--m", "4", "--failure-domain", "host"
    )
    line = error_line(wide)
    assert "needs 12 hosts, only 5 are up" in line, line
    pools = {p["name"] for p in json.loads(ok(rack_bin(lab, "pool", "ls", "--json")).stdout)}
    assert "wide" not in pools


def test_a_small_put_from_a_clock_far_behind_still_wins_over_an_earlier_one(lab: Lab) -> None:
    """Small objects skip the version read; an OSD holding a newer version refuses the
    write and says so, and the put retries above it (docs/objects.md)."""
    first = b"written first, with a clock that is right"
    later = b"written later, from a client whose clock says 1970"
    ok(rack_bin(lab, "put", f"{POOL}/clocks", "-", stdin=first))
    before = stat_json(lab, f"{POOL}/clocks")["version"]
    stored = with_objects(
        lab, lambda oc: oc.put(POOL, "clocks", io.BytesIO(later)), wall_ns=lambda: 1_000
    )
    after = stored.version.hex()
    assert after > before  # the acknowledged version is newer than the earlier one
    assert ok(rack_bin(lab, "get", f"{POOL}/clocks")).stdout == later
    assert stat_json(lab, f"{POOL}/clocks")["version"] == after


def test_status_reports_what_the_osds_hold(lab: Lab) -> None:
    """``rack status --json``: every disk of every node, with the bytes its OSD keeps."""

    def used() -> int | None:
        """Bytes the OSDs keep, once every disk of every node is in the answering view."""
        status = json.loads(ok(rack_bin(lab, "status", "--json")).stdout)
        disks = [d for n in status["nodes"] for d in n["osds"]]
        if len(disks) != 10:  # 5 nodes, 2 disks each; a heartbeat may be on its way
            return None
        assert all(d["ok"] and d["problem"] is None and d["errors"] >= 0 for d in disks)
        assert all(0 < d["free_bytes"] <= d["total_bytes"] for d in disks)
        return sum(d["used_bytes"] for d in disks)

    data = content(91, 2 * CHUNK_SIZE)
    ok(rack_bin(lab, "put", f"{POOL}/status-figures", "-", stdin=data))
    # 2 chunks x 5 shards of a third of a chunk each, plus headers and checksums
    shards = sum(f.stat().st_size for f in shard_files(lab, POOL, "status-figures"))
    assert shards >= len(data) * 5 // 3

    def matches_the_disks() -> bool:
        """The reported total is what the disks hold. Compared with the disks themselves,
        not with an earlier total: the collector may delete superseded shards meanwhile."""
        reported = used()
        held = sum(_stored_bytes(d) for d in disks(lab))
        return reported is not None and abs(reported - held) <= 64 * 1024

    wait_until(matches_the_disks, 10, "rack status reports the bytes on the OSDs' disks")


def _stored_bytes(disk: Path) -> int:
    """Shard files and metadata journals of one disk (its identity file and partial
    writes are not counted by the OSD either)."""
    total = 0
    for f in disk.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            if f.is_file() and f.name != "RACKCLOUD-DISK.json" and "incoming" not in f.parts:
                total += f.stat().st_size
    return total
