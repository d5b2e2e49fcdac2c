"""Object storage figures on a 5-node lab with a 3+2 pool, beside the raw disk, in one run.

Prints one JSON object (the field names are a contract: docs/objects.md). Usage:

    python bench/objects.py [--mode loopback|netns|auto] [--objects 4] [--small 2000]
                            [--big-mib 1024] [--dir DIR]

The lab's disks, the raw-disk files and the CURVE transport test share one filesystem and
the same two cores. Degraded reads run last, with two nodes' power pulled.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq

from agent.clustermap import CreatePool
from agent.data.link import DataLink
from agent.data.objects import ObjectClient
from agent.keys import Keypair, new_keypair
from agent.lab import Lab, state
from agent.lab.rack import proc_stat
from agent.node.security import make_curve_client, make_curve_server

MiB = 1024 * 1024
K, M = 3, 2
TICK = os.sysconf("SC_CLK_TCK")


# ---- CPU accounting ------------------------------------------------------------------


def agent_pids(lab: Lab) -> list[int]:
    st = state.require(lab.dir)
    return [n.pid for n in st.nodes if n.pid is not None]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of this process (all threads) and of the agents."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    for pid in pids:
        fields = proc_stat(pid)
        if len(fields) > 13:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


@contextmanager
def measured(pids: list[int], out: dict[str, float]) -> Iterator[None]:
    os.sync()  # every phase starts with no dirty pages of an earlier one
    c0, t0 = cpu_seconds(pids), time.perf_counter()
    yield
    out["seconds"] = time.perf_counter() - t0
    out["cpu_s"] = cpu_seconds(pids) - c0


# ---- the raw disk --------------------------------------------------------------------


def raw_write_read(base: Path, total: int, blob: bytes) -> tuple[float, float]:
    """Sequential buffered writes + fsync of ``total`` bytes in 64 MiB files, then reads."""
    os.sync()
    files = []
    t0 = time.perf_counter()
    written = 0
    i = 0
    while written < total:
        path = base / f"raw{i}"
        with open(path, "wb") as f:
            for off in range(0, len(blob), 4 * MiB):
                f.write(blob[off : off + 4 * MiB])
            f.flush()
            os.fsync(f.fileno())
        files.append(path)
        written += len(blob)
        i += 1
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path in files:
        with open(path, "rb") as f:
            while f.read(4 * MiB):
                pass
    read_s = time.perf_counter() - t0
    for path in files:
        path.unlink()
    return written / MiB / write_s, written / MiB / read_s


def raw_small_writes(base: Path, count: int, inflight: int) -> float:
    """fsync'd 4 KiB file writes (create, write, fsync, close), ``inflight`` at once."""
    data = os.urandom(4096)
    (base / "small").mkdir()

    def one(i: int) -> None:
        fd = os.open(base / "small" / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(inflight) as pool:
        list(pool.map(one, range(count)))
    return count / (time.perf_counter() - t0)


# ---- one CURVE socket pair, the limit of a networked store ---------------------------


def _sink(port_file: str, server_secret: str, server_public: str, client_public: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    make_curve_server(sock, Keypair(name="sink", public=server_public, secret=server_secret))
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 0)  # no ZAP handler here: CURVE alone admits
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    Path(port_file).write_text(str(port))
    while True:
        frames = sock.recv_multipart(copy=False)
        if len(frames) == 2 and frames[1].bytes == b"stop":
            break
        sock.send_multipart([frames[0], b"ok"])
    ctx.destroy(linger=0)


def transport_mbps(total: int, frame: int = MiB, window: int = 16) -> float:
    """Bytes through one CURVE DEALER/ROUTER pair between two processes."""
    server, client = new_keypair("sink"), new_keypair("bench")
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--sink",
                str(port_file),
                server.secret,
                server.public,
                client.public,
            ],
        )
        try:
            deadline = time.monotonic() + 10
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline:
                    raise RuntimeError("the CURVE sink did not start")
                time.sleep(0.01)
            ctx = zmq.Context()
            sock = ctx.socket(zmq.DEALER)
            make_curve_client(sock, client, server.public)
            sock.connect(f"tcp://127.0.0.1:{port_file.read_text()}")
            payload = os.urandom(frame)
            sock.send(b"warm")
            sock.recv()
            n = total // frame
            t0 = time.perf_counter()
            sent = acked = 0
            while acked < n:
                while sent < n and sent - acked < window:
                    sock.send(payload, copy=False)
                    sent += 1
                sock.recv()
                acked += 1
            seconds = time.perf_counter() - t0
            sock.send(b"stop")
            ctx.destroy(linger=0)
        finally:
            proc.wait(timeout=10)
    return n * frame / MiB / seconds


# ---- the object store ----------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def many(n: int, inflight: int, op: Callable[[int], Awaitable[None]]) -> list[float]:
    """Run ``op(i)`` for i < n, ``inflight`` at once; the latency of each, in seconds."""
    slots = asyncio.Semaphore(inflight)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with slots:
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(one(i) for i in range(n)))
    return latencies


class Bench:
    def __init__(self, lab: Lab, args: argparse.Namespace) -> None:
        self.lab = lab
        self.args = args
        self.client = lab.client()
        self.cmap = self.client.cluster_map()
        self.pids = agent_pids(lab)
        self.out: dict[str, Any] = {}

    def refresh_map(self) -> None:
        self.cmap = self.client.cluster_map()

    async def run_healthy(self, blob: bytes) -> None:
        link = DataLink(self.client.me)
        oc = ObjectClient(link, lambda: self.cmap)
        a = self.args
        try:
            put: dict[str, float] = {}
            with measured(self.pids, put):
                for i in range(a.objects):
                    await oc.put("bench", f"big/{i}", io.BytesIO(blob))
            get: dict[str, float] = {}
            sink = bytearray()
            with measured(self.pids, get):
                for i in range(a.objects):
                    sink.clear()
                    await oc.get("bench", f"big/{i}", sink.extend)
            assert bytes(sink) == blob, "the last 64 MiB object did not read back"
            total = a.objects * len(blob)
            self.out["put_MBps"] = total / MiB / put["seconds"]
            self.out["get_MBps"] = total / MiB / get["seconds"]
            self.out["cpu_s_per_GB_put"] = put["cpu_s"] / (total / 1024**3)
            self.out["cpu_s_per_GB_get"] = get["cpu_s"] / (total / 1024**3)

            small = os.urandom(4096)
            os.sync()
            t0 = time.perf_counter()
            lat = await many(
                a.small, 16, lambda i: oc.put("bench", f"small/{i}", io.BytesIO(small))
            )
            self.out["small_put_per_s"] = a.small / (time.perf_counter() - t0)
            self.out["small_put_p50_ms"] = percentile(lat, 0.5) * 1000
            self.out["small_put_p99_ms"] = percentile(lat, 0.99) * 1000
            t0 = time.perf_counter()
            await many(a.small, 16, lambda i: _drop(oc.get("bench", f"small/{i}", _nothing)))
            self.out["small_get_per_s"] = a.small / (time.perf_counter() - t0)

            mid = blob[: 4 * MiB]
            os.sync()
            t0 = time.perf_counter()
            await many(a.mid, 16, lambda i: oc.put("bench", f"mid/{i}", io.BytesIO(mid)))
            self.out["put_4MiB_MBps"] = a.mid * 4 / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            await many(a.mid, 16, lambda i: _drop(oc.get("bench", f"mid/{i}", _nothing)))
            self.out["get_4MiB_MBps"] = a.mid * 4 / (time.perf_counter() - t0)
        finally:
            link.close()

    async def run_degraded(self, blob: bytes) -> None:
        link = DataLink(self.client.me)
        oc = ObjectClient(link, lambda: self.cmap)
        try:
            sink = bytearray()
            t0 = time.perf_counter()
            for i in range(self.args.objects):
                sink.clear()
                await oc.get("bench", f"big/{i}", sink.extend)
            seconds = time.perf_counter() - t0
            assert bytes(sink) == blob, "a degraded read returned other bytes"
            self.out["degraded_get_MBps"] = self.args.objects * len(blob) / MiB / seconds
        finally:
            link.close()

    def big_put_rss(self, blob: bytes) -> None:
        """``rack put`` of a 1 GiB stream in a child process: its peak RSS and speed."""
        env = {**os.environ, "RACK_CONF": str(self.lab.client_conf)}
        cmd = [sys.executable, "-m", "agent.cli.main", "put", "bench/huge", "-"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        assert proc.stdin is not None
        peak = [0]
        done = threading.Event()

        def watch() -> None:  # VmHWM of the exec'd client (ru_maxrss would count the fork)
            while not done.is_set():
                peak[0] = max(peak[0], vm_hwm_kb(proc.pid))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        left = self.args.big_mib * MiB
        while left > 0:
            piece = blob[: min(left, len(blob))]
            proc.stdin.write(piece)
            left -= len(piece)
        proc.stdin.close()
        status = proc.wait()
        done.set()
        watcher.join()
        seconds = time.perf_counter() - t0
        if status != 0:
            raise RuntimeError(f"the 1 GiB put failed with status {status}")
        self.out["client_peak_rss_MB"] = peak[0] / 1024
        self.out["big_put_MBps"] = self.args.big_mib / seconds


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set of a running process, in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


async def _drop(coro: Awaitable[object]) -> None:
    await coro


def _nothing(_: bytes) -> None:
    pass


def wait_down(bench: Bench, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bench.refresh_map()
        if all(bench.cmap.nodes[n].state == "down" for n in names):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{', '.join(names)} were not marked down within {timeout:g} s")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--sink":
        _sink(*sys.argv[2:6])
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", default="loopback", choices=["auto", "netns", "loopback"])
    p.add_argument("--objects", type=int, default=4, help="64 MiB objects put, got, degraded")
    p.add_argument("--small", type=int, default=2000, help="4 KiB objects, 16 in flight")
    p.add_argument("--mid", type=int, default=64, help="4 MiB objects, 16 in flight")
    p.add_argument("--big-mib", type=int, default=1024, help="size of the RSS-measured put")
    p.add_argument("--dir", default=None, help="where the lab and the raw files go")
    args = p.parse_args()
    blob = os.urandom(64 * MiB)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="rack-bench-") as tmp:
        base = Path(tmp)
        out: dict[str, Any] = {"mode": args.mode, "k": K, "m": M, "object_MiB": 64}
        raw_w, raw_r = raw_write_read(base, args.objects * len(blob), blob)
        out["raw_write_MBps"], out["raw_read_MBps"] = raw_w, raw_r
        out["raw_small_write_per_s"] = raw_small_writes(base, args.small, 16)
        out["transport_MBps"] = transport_mbps(256 * MiB)
        lab = Lab(base / "lab", progress=lambda msg: print(msg, file=sys.stderr))
        lab.up(5, args.mode, timeout=60.0)
        try:
            bench = Bench(lab, args)
            reply = bench.client.propose(CreatePool(name="bench", k=K, m=M, pg_num=64))
            if reply.refused:
                raise RuntimeError(reply.refused)
            bench.refresh_map()
            asyncio.run(bench.run_healthy(blob))
            bench.big_put_rss(blob)
            for name in ("n2", "n4"):
                lab.kill(name)
            wait_down(bench, ["n2", "n4"])
            asyncio.run(bench.run_degraded(blob))
            out.update(bench.out)
        finally:
            lab.down()
    out["put_of_limit"] = out["put_MBps"] / (out["raw_write_MBps"] * K / (K + M))
    out["get_of_raw"] = out["get_MBps"] / out["raw_read_MBps"]
    out["get_of_transport"] = out["get_MBps"] / out["transport_MBps"]
    out["degraded_of_healthy"] = out["degraded_get_MBps"] / out["get_MBps"]
    out["small_put_of_raw"] = out["small_put_per_s"] / out["raw_small_write_per_s"]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
