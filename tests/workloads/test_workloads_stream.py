"""The demo workload ``rack-demo-stream``: its settings, fence refusals and checkpoints;
its HTTP side against an in-memory show (many viewers, viewers that vanish, requests that
wait for the checkpoint); and, on a loopback lab, a real instance that checkpoints, stops
on SIGTERM, and a next generation that resumes where it stopped."""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.errors import Fenced, NotEnoughShards, NotFound, RemoteError
from agent.lab import Lab
from agent.wire import ErrorCode
from agent.workloads import stream
from agent.workloads.stream import (
    Checkpoint,
    HttpFront,
    Refusal,
    Show,
    StreamError,
    parse_args,
    refusal_of,
    settings_of,
)
from agent.workloads.video import frame_number, make_video, parse_video
from tests.helpers import wait_until
from tests.integration.objects_helpers import create_pool, put_bytes, read_all, with_objects

T = TypeVar("T")

# ---- settings, refusals, checkpoints ---------------------------------------------------

ENV = {"RACK_CONF": "/etc/rack/client.toml"}


def test_settings_from_arguments_and_environment() -> None:
    env = {
        **ENV,
        "RACK_VOLUME": "vol/demo/",
        "RACK_GENERATION": "4",
        "RACK_NODE": "n2",
        "RACK_CONTAINER": "tv",
        "RACK_ADDRESS": "127.0.0.9",
    }
    s = settings_of(parse_args(["--object", "p/movie", "--fps", "10"]), env)
    assert (s.pool, s.name, s.video) == ("p", "movie", "p/movie")
    assert (s.address, s.port, s.fps) == ("127.0.0.9", 8080, 10.0)
    assert (s.node, s.generation, s.container) == ("n2", 4, "tv")
    assert s.checkpoint == ("vol", "demo/stream.checkpoint")
    flagged = settings_of(parse_args(["--object", "p/m", "--address", "10.0.0.5"]), env)
    assert flagged.address == "10.0.0.5"
    bare = settings_of(parse_args(["--object", "p/m"]), ENV)
    assert (bare.address, bare.generation, bare.container, bare.checkpoint) == (
        "127.0.0.1",
        0,
        "stream",
        None,
    )
    assert settings_of(parse_args(["--object", "p/m"]), {**ENV, "RACK_VOLUME": "vol/"}).checkpoint
    assert bare.checkpoint is None


@pytest.mark.parametrize(
    "argv,env,message",
    [
        (["--object", "p/m"], {}, "RACK_CONF is not set"),
        (["--object", "p/m"], {**ENV, "RACK_GENERATION": "two"}, "RACK_GENERATION 'two' is not"),
        (
            ["--object", "p/m"],
            {**ENV, "RACK_VOLUME": "vol"},
            "RACK_VOLUME 'vol' is not POOL/PREFIX",
        ),
        (["--object", "p/m", "--fps", "0"], ENV, "--fps 0 is not a frame rate"),
        (["--object", "p/m", "--port", "70000"], ENV, "--port 70000 is not a port"),
        (["--object", "nopool"], ENV, "names no object"),
    ],
)
def test_bad_settings_are_refused(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(Exception, match=re.escape(message)):
        settings_of(parse_args(argv), env)


def test_refusals_are_told_apart() -> None:
    assert refusal_of(RemoteError(ErrorCode.FENCED, "generation 1 < 2")) is Refusal.STALE
    assert refusal_of(Fenced("generation 1 of stream is older than 2")) is Refusal.STALE
    wrapped = NotEnoughShards(
        "the metadata of v/stream.checkpoint reached 1 OSDs, 2 are needed, so the change may "
        "or may not be visible (osd.1: the write is fenced, osd.2: no answer in time)"
    )
    assert refusal_of(wrapped) is Refusal.STALE
    assert refusal_of(RemoteError("bad_request", "the write has no fence")) is Refusal.FENCED
    assert refusal_of(RemoteError("not_found", "there is no object p/x")) is None
    assert refusal_of(NotEnoughShards("only 2 of the 3 OSDs are up")) is None
    assert refusal_of(TimeoutError()) is None


def test_checkpoints_round_trip_and_bad_ones_are_refused() -> None:
    cp = Checkpoint(frame=1234, generation=3, node="n2", at=1700000000.5)
    assert Checkpoint.decode(cp.encode()) == cp
    assert set(json.loads(cp.encode())) == {"frame", "generation", "node", "at"}
    for bad in (
        b"",
        b"[]",
        b'{"frame": 1}',
        b'{"frame": -1, "generation": 1, "node": "n", "at": 0}',
    ):
        with pytest.raises(StreamError, match="checkpoint"):
            Checkpoint.decode(bad)


def test_the_playhead_advances_at_the_frame_rate_and_never_wraps() -> None:
    now = [100.0]
    show = Show("n1", 1, fps=25, clock=lambda: now[0])
    show.start(4990)
    assert show.frame() == 4990
    now[0] += 2.0
    assert show.frame() == 5040
    assert show.due(5065) == pytest.approx(103.0)


# ---- one instance against a fake rack ----------------------------------------------------


class FakeRack:
    """Stands in for :class:`stream.Rack`: records what the instance asks, in order."""

    saved: Checkpoint | None = None
    refuse: BaseException | None = None
    last: FakeRack

    def __init__(self, s: Any, client: Any) -> None:
        self.calls: list[str] = []
        self.writes: list[Checkpoint] = []
        FakeRack.last = self

    async def first_map(self) -> None:
        self.calls.append("map")

    async def refresh_forever(self) -> None:
        await asyncio.Event().wait()

    async def read_checkpoint(self) -> Checkpoint | None:
        self.calls.append("checkpoint")
        return self.saved

    async def read_video(self) -> Any:
        self.calls.append("video")
        return VIDEO

    async def write_checkpoint(self, cp: Checkpoint) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.writes.append(cp)

    async def close(self) -> None:
        self.calls.append("close")


def run_instance(
    monkeypatch: pytest.MonkeyPatch,
    saved: Checkpoint | None,
    refuse: BaseException | None = None,
    stop_after: float = 1.2,
) -> tuple[int, list[str], FakeRack]:
    monkeypatch.setattr(stream, "Rack", FakeRack)
    monkeypatch.setattr(stream, "Client", lambda conf: None)
    monkeypatch.setattr(FakeRack, "saved", saved)
    monkeypatch.setattr(FakeRack, "refuse", refuse)
    env = {**ENV, "RACK_VOLUME": "p/demo/", "RACK_GENERATION": "2", "RACK_NODE": "n3"}
    s = settings_of(parse_args(["--object", "p/v", "--port", "0", "--fps", "100"]), env)
    said: list[str] = []
    instance = stream.Stream(s, conf=None, say=said.append)  # type: ignore[arg-type]

    async def run() -> int:
        loop = asyncio.get_running_loop()
        loop.call_later(stop_after, instance.stop.set)  # what the SIGTERM handler does
        return await instance.run()

    return asyncio.run(run()), said, FakeRack.last


def test_an_instance_resumes_checkpoints_and_writes_a_last_one_on_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, said, rack = run_instance(monkeypatch, Checkpoint(500, 1, "n1", 0.0))
    assert code == 0
    assert rack.calls == ["map", "checkpoint", "video", "close"]  # the checkpoint first
    assert len(said) == 1 and said[0].startswith("serving frame 500 of p/v at 127.0.0.1:")
    assert said[0].endswith(" as generation 2 on node n3")
    frames = [cp.frame for cp in rack.writes]
    assert len(frames) >= 3 and frames == sorted(frames) and frames[0] >= 500
    assert frames[-1] >= 500 + 60  # the last one, on stop, about 1.2 s at 100 fps later
    assert {(cp.generation, cp.node) for cp in rack.writes} == {(2, "n3")}


def test_a_checkpoint_of_a_newer_generation_means_this_one_is_stale(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said, rack = run_instance(monkeypatch, Checkpoint(500, 3, "n1", 0.0), stop_after=5)
    assert code == stream.EXIT_STALE
    assert said == [] and rack.writes == []
    assert "generation 2 of container stream is stale" in capsys.readouterr().err


def test_a_write_refused_as_stale_ends_the_instance(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = RemoteError(ErrorCode.FENCED, "generation 2 of stream is older than 3")
    code, said, _ = run_instance(monkeypatch, None, refused, stop_after=5)
    assert code == stream.EXIT_STALE
    assert said and said[0].startswith("serving frame 0 ")
    err = capsys.readouterr().err
    assert "a newer instance runs elsewhere, so this one stops" in err


def test_other_refusals_are_logged_once_and_the_stream_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refused = RemoteError("bad_request", "the write has no fence")
    code, _, _ = run_instance(monkeypatch, None, refused)
    assert code == 0
    assert caplog.text.count("writing the checkpoint failed: the write has no fence") == 1


# ---- HTTP against an in-memory show ------------------------------------------------------

FPS = 100.0
VIDEO = parse_video(make_video(50, 256))


class Served:
    """An HttpFront on its own event loop thread, so plain blocking clients can talk to it."""

    def __init__(self, *, positioned: bool = True, loaded: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.show = Show("n9", 7, fps=FPS)
        self.front = HttpFront(self.show)
        up = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self.front.handle, "127.0.0.1", 0)
            )
            self.port = self.server.sockets[0].getsockname()[1]
            up.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        up.wait(5)
        if positioned:
            self.call(self.show.start, 40)
        if loaded:
            self.call(self.show.load, VIDEO)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        async def down() -> None:
            self.server.close()
            self.front.close_all()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(down(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    try:
        yield s
    finally:
        s.close()


def get(port: int, path: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@contextmanager
def viewer(port: int, timeout: float = 5.0) -> Iterator[Callable[[], bytes]]:
    """A raw ``/stream`` connection; yields a function that reads the next chunk."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    f = sock.makefile("rb")
    try:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        status = f.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        headers = {}
        while (line := f.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers["transfer-encoding"] == "chunked", headers

        def chunk() -> bytes:
            size = int(f.readline().strip(), 16)
            data = f.read(size)
            assert f.read(2) == b"\r\n"
            return data

        yield chunk
    finally:
        f.close()
        sock.close()


def consecutive(frames: list[int], count: int) -> bool:
    return all((b - a) % count == 1 for a, b in itertools.pairwise(frames))


def test_health_frame_and_unknown_paths(served: Served) -> None:
    assert get(served.port, "/health") == (200, b"ok\n")
    status, body = get(served.port, "/frame?x=1")
    assert status == 200
    answer = json.loads(body)
    assert set(answer) == {"frame", "node", "generation"}
    assert (answer["node"], answer["generation"]) == ("n9", 7)
    assert answer["frame"] >= 40
    assert get(served.port, "/nope")[0] == 404
    assert get(served.port, "/frame", method="POST")[0] == 405


def test_one_connection_takes_many_requests(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        frames = []
        for _ in range(3):
            conn.request("GET", "/frame")
            resp = conn.getresponse()
            frames.append(json.loads(resp.read())["frame"])
        assert frames == sorted(frames)
    finally:
        conn.close()


def test_a_bad_request_line_is_refused(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(b"HELLO\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")


def test_frame_waits_for_the_checkpoint() -> None:
    s = Served(positioned=False)
    try:
        got: list[tuple[int, bytes]] = []
        asker = threading.Thread(target=lambda: got.append(get(s.port, "/frame")))
        asker.start()
        time.sleep(0.3)
        assert not got  # still waiting, not refused
        s.call(s.show.start, 123)
        asker.join(5)
        status, body = got[0]
        assert status == 200 and json.loads(body)["frame"] >= 123
    finally:
        s.close()


def test_frame_and_stream_say_503_when_what_they_need_never_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "FRAME_WAIT_S", 0.2)
    monkeypatch.setattr(stream, "STREAM_WAIT_S", 0.2)
    s = Served(positioned=False, loaded=False)
    try:
        assert get(s.port, "/frame")[0] == 503
        assert get(s.port, "/stream")[0] == 503
        assert get(s.port, "/health") == (200, b"ok\n")
    finally:
        s.close()


def test_many_viewers_each_see_consecutive_frames(served: Served) -> None:
    results: dict[int, list[int]] = {}

    def watch(i: int) -> None:
        with viewer(served.port) as chunk:
            results[i] = [frame_number(chunk()) for _ in range(60)]  # wraps the 50 frames

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 20
    for frames in results.values():
        assert consecutive(frames, VIDEO.count), frames


def test_viewers_that_vanish_hurt_no_one(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        sock.sendall(b"GET /stream HTTP/1.1\r\n\r\n")
        sock.recv(512)
        # a reset, not a polite close: the server learns of it on its next write
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    half = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    half.sendall(b"GET /fra")  # gone half way through a request
    half.close()
    time.sleep(0.2)
    with viewer(served.port) as chunk:
        assert consecutive([frame_number(chunk()) for _ in range(10)], VIDEO.count)
    assert get(served.port, "/health") == (200, b"ok\n")
    assert "a request failed" not in caplog.text


# ---- a real instance on a loopback lab ---------------------------------------------------

POOL = "p"
VOLUME = f"{POOL}/demo/"
CHECKPOINT = "demo/stream.checkpoint"
SERVING = re.compile(
    r"^serving frame (\d+) of p/video at 127\.0\.0\.1:(\d+) as generation (\d+) on node n1$"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Three loopback nodes with a 2+1 pool holding a 200-frame video."""
    lab = Lab(tmp_path_factory.mktemp("stream") / "lab")
    try:
        lab.up(3, "loopback", timeout=60.0)
        create_pool(lab, POOL, 2, 1)
        put_bytes(lab, POOL, "video", make_video(200, 4096))
        yield lab
    finally:
        lab.down()


def first_of(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """The first truthy value ``probe`` returns, polled until ``timeout``."""
    found: list[T] = []

    def check() -> bool:
        value = probe()
        if value:
            found.append(value)
        return bool(value)

    wait_until(check, timeout, what)
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Instance:
    """One ``python -m agent.workloads.stream`` process, as the supervisor would start it."""

    def __init__(self, lab: Lab, generation: int, logs: Path) -> None:
        self.port = free_port()
        self.out = logs / f"gen{generation}.out"
        self.err = logs / f"gen{generation}.err"
        env = {
            **os.environ,
            "RACK_CONF": str(lab.client_conf),
            "RACK_VOLUME": VOLUME,
            "RACK_GENERATION": str(generation),
            "RACK_NODE": "n1",
            "RACK_CONTAINER": "stream",
        }
        argv = ["--object", f"{POOL}/video", "--address", "127.0.0.1", "--port", str(self.port)]
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.workloads.stream", *argv],
                stdout=out,
                stderr=err,
                env=env,
            )
        self.started = time.monotonic()

    def frame(self) -> dict[str, Any] | None:
        assert self.proc.poll() is None, self.err.read_text()
        try:
            status, body = get(self.port, "/frame", timeout=2.0)
        except OSError:
            return None
        return json.loads(body) if status == 200 else None

    def first_frame(self) -> tuple[dict[str, Any], float]:
        """The first ``/frame`` answer, and how long after the start it came."""
        answer = first_of(self.frame, 20, "/frame answers")
        return answer, time.monotonic() - self.started

    def stop(self) -> tuple[int, float]:
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        return code, time.monotonic() - began

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def instances(lab: Lab, tmp_path: Path) -> Iterator[Callable[[int], Instance]]:
    started: list[Instance] = []

    def start(generation: int) -> Instance:
        started.append(Instance(lab, generation, tmp_path))
        return started[-1]

    try:
        yield start
    finally:
        for inst in started:
            inst.kill()


def checkpoint(lab: Lab) -> dict[str, Any] | None:
    async def read(oc: Any) -> bytes | None:
        try:
            return await read_all(oc, POOL, CHECKPOINT)
        except NotFound:
            return None

    data = with_objects(lab, read)
    return None if data is None else json.loads(data)


@pytest.mark.integration
def test_an_instance_checkpoints_and_the_next_generation_resumes(
    lab: Lab, instances: Callable[[int], Instance]
) -> None:
    first = instances(1)
    answer, took = first.first_frame()
    print(f"generation 1 answered /frame {took:.2f} s after its start")
    assert set(answer) == {"frame", "node", "generation"}
    assert (answer["node"], answer["generation"]) == ("n1", 1)
    assert answer["frame"] >= 0
    line = first.out.read_text().strip()
    match = SERVING.match(line)
    assert match is not None, line
    assert match.groups() == ("0", str(first.port), "1")  # no checkpoint yet: frame 0

    with viewer(first.port, timeout=20.0) as chunk:
        frames = [frame_number(chunk()) for _ in range(8)]
    assert consecutive(frames, 200), frames

    saved = first_of(
        lambda: (cp := checkpoint(lab)) and cp["frame"] > 0 and cp, 10, "a checkpoint past 0"
    )
    assert saved["generation"] == 1 and saved["node"] == "n1"

    code, stopping = first.stop()
    assert code == 0, first.err.read_text()
    assert stopping < 3.0, f"SIGTERM took {stopping:.2f} s"
    last = checkpoint(lab)
    assert last is not None and last["generation"] == 1
    assert last["frame"] >= saved["frame"]

    second = instances(2)
    answer, took = second.first_frame()
    print(f"generation 2 answered /frame {took:.2f} s after its start")
    assert answer["generation"] == 2
    assert answer["frame"] >= last["frame"], (answer, last)
    match = SERVING.match(second.out.read_text().strip())
    assert match is not None
    assert int(match.group(1)) == last["frame"]  # resumed from the last checkpoint exactly
    wait_until(
        lambda: (checkpoint(lab) or {}).get("generation") == 2, 10, "generation 2 checkpoints"
    )
    with viewer(second.port, timeout=20.0) as chunk:
        frames = [frame_number(chunk()) for _ in range(5)]
    assert consecutive(frames, 200), frames
    assert second.stop()[0] == 0, second.err.read_text()
