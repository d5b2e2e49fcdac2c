"""``rack-demo-stream``: the demo workload, a live video stream whose position survives a
failover (DESIGN §11).

It serves HTTP on its container's address: ``GET /frame`` (JSON ``frame``, ``node``,
``generation``), ``GET /stream`` (a chunked stream, one frame per chunk, at ``--fps``) and
``GET /health``. The video is an object in the rack (:mod:`agent.workloads.video`); the
position is checkpointed twice a second into the container's volume, every write carrying
the container's fence, so a new instance on another node resumes where the old one was
and a stale one's writes are refused.

``frame`` counts frames played since the stream first began and never wraps; the frame
shown is ``frame % count``. So checkpoints compare across instances, and a viewer can tell
a resumed stream from one that went back.

Start order, for a short failover gap: bind the listener first (clients connect and wait
instead of being refused), read the checkpoint (``/frame`` answers from then on), and only
then read the whole video (``/stream`` needs it).

Environment (set by the supervisor): ``RACK_CONF`` (client TOML), ``RACK_VOLUME``
(``POOL/PREFIX``; the checkpoint is ``PREFIX + "stream.checkpoint"``), ``RACK_CONTAINER``,
``RACK_GENERATION``, ``RACK_NODE`` and ``RACK_ADDRESS``. The volume's pool must take
writes with a node down, so m >= 2 (a write needs k + 1 of its k + m hosts; 2+2, 3+2): a
2+1 pool refuses every checkpoint while one of its nodes is down.

Exit status: 0 after SIGTERM (a last checkpoint written within a second), 1 when it cannot
start (one sentence on stderr), ``EXIT_STALE`` (3) when a newer generation runs elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import io
import json
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.client import Client
from agent.clustermap import ClusterMap
from agent.config import ClientConfig, load_client_config
from agent.data.link import DataLink
from agent.data.objects import ObjectClient
from agent.ec import isal_lib
from agent.errors import Fenced, NotFound, RackError, RemoteError
from agent.names import check_name, check_object_name, split_object_path
from agent.wire import ErrorCode, Fence
from agent.workloads.video import Video, parse_video

T = TypeVar("T")
log = logging.getLogger("agent.workloads.stream")

PROG = "rack-demo-stream"
DEFAULT_PORT = 8080
DEFAULT_FPS = 25.0
DEFAULT_CONTAINER = "stream"
CHECKPOINT_NAME = "stream.checkpoint"
CHECKPOINT_EVERY_S = 0.5
CHECKPOINT_TIMEOUT_S = 3.0
"""A checkpoint put that takes longer is abandoned; the next one carries a newer frame."""
LAST_CHECKPOINT_S = 1.0
"""The checkpoint written on SIGTERM may take this long; the supervisor waits for the exit."""
MAP_EVERY_S = 2.0
MAP_TIMEOUT_S = 1.0
"""Also bounds how long an exit waits for a map request in flight."""
RETRY_S = 0.5
FRAME_WAIT_S = 10.0
"""How long ``/frame`` waits for the checkpoint before answering 503."""
STREAM_WAIT_S = 30.0
"""How long ``/stream`` waits for the video before answering 503."""
IDLE_S = 30.0
MAX_BODY = 64 * 1024
EXIT_STALE = 3
"""Exit status of an instance that learned a newer generation of it runs elsewhere."""


class StreamError(RackError):
    """The workload cannot start as configured."""


# ---- settings ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the workload needs, from its arguments and its container's env."""

    pool: str
    name: str
    address: str
    port: int
    fps: float
    conf: str
    node: str
    generation: int
    container: str
    checkpoint: tuple[str, str] | None
    """(pool, object name) of the checkpoint, or None without a volume."""

    @property
    def video(self) -> str:
        return f"{self.pool}/{self.name}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description="the demo workload: a live stream that survives a failover"
    )
    parser.add_argument("--object", required=True, metavar="POOL/NAME", help="the video")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--address", default=None, help="default: $RACK_ADDRESS or 127.0.0.1")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS)
    return parser.parse_args(argv)


def checkpoint_of(volume: str) -> tuple[str, str]:
    """``POOL/PREFIX`` into the pool and the checkpoint's object name."""
    pool, sep, prefix = volume.partition("/")
    if not sep:
        raise StreamError(f"RACK_VOLUME {volume!r} is not POOL/PREFIX")
    return check_name(pool, "volume pool name"), check_object_name(prefix + CHECKPOINT_NAME)


def settings_of(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    pool, name = split_object_path(args.object)
    if not 0 <= args.port < 65536:
        raise StreamError(f"--port {args.port} is not a port (0-65535)")
    if not (math.isfinite(args.fps) and 0 < args.fps <= 1000):
        raise StreamError(f"--fps {args.fps:g} is not a frame rate (above 0, at most 1000)")
    conf = env.get("RACK_CONF")
    if not conf:
        raise StreamError("RACK_CONF is not set: it names the client config of the rack")
    try:
        generation = int(env.get("RACK_GENERATION", "0"))
    except ValueError:
        raise StreamError(f"RACK_GENERATION {env['RACK_GENERATION']!r} is not a number") from None
    volume = env.get("RACK_VOLUME")
    return Settings(
        pool=pool,
        name=name,
        address=args.address or env.get("RACK_ADDRESS") or "127.0.0.1",
        port=args.port,
        fps=args.fps,
        conf=conf,
        node=env.get("RACK_NODE") or socket.gethostname(),
        generation=generation,
        container=env.get("RACK_CONTAINER") or DEFAULT_CONTAINER,
        checkpoint=checkpoint_of(volume) if volume else None,
    )


# ---- fence refusals --------------------------------------------------------------------


class Refusal(enum.Enum):
    STALE = "stale"
    """Our generation is older than one the OSDs have seen: a newer instance runs; exit."""
    FENCED = "fenced"
    """Refused for its fence in some other way: logged once, and the instance serves on."""


STALE_CODES = frozenset({ErrorCode.FENCED.value})
"""``fenced`` is the OSDs' answer to a stale generation (agent/wire/errors.py)."""
STALE_WORDS = ("fenced", "stale generation", "generation is stale", "newer generation")
FENCE_WORDS = ("fence",)


def refusal_of(exc: BaseException) -> Refusal | None:
    """Whether a failed write was refused for its fence, and how; None for other failures.

    The one place that decides it (adjust the tables above). It looks at the error's type
    and code, and at the sentence of an error that wraps the OSDs' answers: a metadata
    write reports each as ``osd.N: ...`` inside NotEnoughShards, where the code is lost.
    Stale wins: one OSD that has seen a newer generation proves a newer instance exists.
    """
    code = exc.code.lower() if isinstance(exc, RemoteError) else ""
    words = str(exc).lower()
    if isinstance(exc, Fenced) or code in STALE_CODES or any(w in words for w in STALE_WORDS):
        return Refusal.STALE
    if any(w in words for w in FENCE_WORDS):
        return Refusal.FENCED
    return None


class Problems:
    """Logs a failing operation once per kind of failure, and once when it works again, so
    a rack in trouble does not flood the container's log at two writes a second."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.seen: set[str] = set()

    def report(self, exc: BaseException, kind: str | None = None) -> None:
        kind = kind or f"{type(exc).__name__}:{getattr(exc, 'code', '')}"
        if kind not in self.seen:
            self.seen.add(kind)
            log.warning("%s failed: %s", self.what, str(exc) or type(exc).__name__)

    def cleared(self) -> None:
        if self.seen:
            log.info("%s works again", self.what)
            self.seen.clear()


# ---- checkpoints ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    frame: int
    generation: int
    node: str
    at: float
    """Wall-clock time of the write (seconds since the epoch), for people reading it."""

    def encode(self) -> bytes:
        return json.dumps(
            {"frame": self.frame, "generation": self.generation, "node": self.node, "at": self.at}
        ).encode()

    @classmethod
    def decode(cls, data: bytes | bytearray) -> Checkpoint:
        try:
            raw = json.loads(data)
            cp = cls(int(raw["frame"]), int(raw["generation"]), str(raw["node"]), float(raw["at"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise StreamError(f"the checkpoint does not decode ({exc})") from None
        if cp.frame < 0:
            raise StreamError(f"the checkpoint names frame {cp.frame}")
        return cp


# ---- what is shown ---------------------------------------------------------------------


class Show:
    """The stream's state that HTTP serves: the playhead, once known, and the video, once
    read. Each has an event, so requests can wait for it."""

    def __init__(
        self, node: str, generation: int, fps: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.node = node
        self.generation = generation
        self.fps = fps
        self.clock = clock
        self.origin = 0
        self.t0 = 0.0
        self.video: Video | None = None
        self.positioned = asyncio.Event()
        self.loaded = asyncio.Event()

    def start(self, frame: int) -> None:
        self.origin, self.t0 = frame, self.clock()
        self.positioned.set()

    def load(self, video: Video) -> None:
        self.video = video
        self.loaded.set()

    def frame(self) -> int:
        """Frames played since the stream first began (never wraps)."""
        return self.origin + int((self.clock() - self.t0) * self.fps)

    def due(self, frame: int) -> float:
        """When ``frame`` is due, on ``clock``."""
        return self.t0 + (frame - self.origin) / self.fps

    def frame_json(self) -> bytes:
        body = {"frame": self.frame(), "node": self.node, "generation": self.generation}
        return json.dumps(body).encode()


# ---- HTTP ------------------------------------------------------------------------------

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        return self.version == "HTTP/1.1" and "close" not in conn


class HttpFront:
    """The stdlib HTTP/1.1 side: keep-alive for short answers, one chunked stream per
    ``/stream`` connection. A client that goes away only ends its own connection."""

    def __init__(self, show: Show) -> None:
        self.show = show
        self.writers: set[asyncio.StreamWriter] = set()

    def close_all(self) -> None:
        for writer in list(self.writers):
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while (request := await self._read(reader, writer)) is not None:
                if not await self._answer(request, writer):
                    break
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception:  # one bad request must never take the stream down for others
            log.exception("a request failed")
        finally:
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        """The next request, or None when the client is done (or sent nonsense)."""
        try:
            async with asyncio.timeout(IDLE_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            await self._respond(writer, 431, b"request head too large\n", keep=False)
            return None
        line, *rest = head.decode("latin-1").split("\r\n")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await self._respond(writer, 400, b"bad request line\n", keep=False)
            return None
        headers = {}
        for field in rest:
            name, sep, value = field.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            await self._respond(writer, 413, b"no request bodies here\n", keep=False)
            return None
        await reader.readexactly(int(length))
        return Request(parts[0], parts[1].split("?", 1)[0], parts[2], headers)

    async def _answer(self, req: Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; returns whether the connection may take another."""
        keep = req.keep_alive
        if req.method != "GET":
            await self._respond(writer, 405, b"only GET\n", keep=keep, extra="Allow: GET\r\n")
        elif req.path == "/health":
            await self._respond(writer, 200, b"ok\n", keep=keep)
        elif req.path == "/frame":
            if await _wait(self.show.positioned, FRAME_WAIT_S):
                body = self.show.frame_json()
                await self._respond(writer, 200, body, keep=keep, kind="application/json")
            else:
                await self._respond(writer, 503, b"the position is not known yet\n", keep=keep)
        elif req.path == "/stream":
            if not await _wait(self.show.loaded, STREAM_WAIT_S):
                await self._respond(writer, 503, b"the video is not read yet\n", keep=keep)
                return keep
            await self._stream(writer, chunked=req.version == "HTTP/1.1")
            return False
        else:
            await self._respond(
                writer, 404, b"not found: try /frame, /stream or /health\n", keep=keep
            )
        return keep

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        *,
        keep: bool,
        kind: str = "text/plain; charset=utf-8",
        extra: str = "",
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n{extra}"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter, chunked: bool) -> None:
        """Frames as they fall due, each its own chunk. A viewer more than a second behind
        skips ahead to the live frame: this is a live stream, not a download."""
        show, video = self.show, self.show.video
        assert video is not None
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"{'Transfer-Encoding: chunked' if chunked else 'Connection: close'}\r\n"
            f"Cache-Control: no-store\r\nX-Frame-Size: {video.frame_size}\r\n"
            f"X-Frame-Count: {video.count}\r\nX-Node: {show.node}\r\n"
            f"X-Generation: {show.generation}\r\n\r\n"
        )
        writer.write(head.encode())
        frame = show.frame()
        while not writer.is_closing():
            data = video.frame(frame % video.count)
            writer.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
            await writer.drain()
            frame += 1
            live = show.frame()
            if live - frame > show.fps:
                frame = live
            delay = show.due(frame) - show.clock()
            if delay > 0:
                await asyncio.sleep(delay)


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    if not event.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()
    return event.is_set()


# ---- the rack side ---------------------------------------------------------------------


class Rack:
    """The workload's view of the rack: a map kept fresh in the background (nodes go down,
    and a stale map sends writes to them), and the object client, fenced."""

    def __init__(self, s: Settings, client: Client) -> None:
        self.s = s
        self.client = client
        self.cmap: ClusterMap | None = None
        self.link = DataLink(client.me)
        self.objects = ObjectClient(
            self.link,
            self._map,
            on_damage=log.warning,
            fence=Fence(s.container, s.generation),
        )
        self.threads: set[asyncio.Future[Any]] = set()
        self.map_problems = Problems("reading the cluster map")
        self.read_problems = Problems("reading the rack")

    def _map(self) -> ClusterMap:
        assert self.cmap is not None, "no cluster map yet"
        return self.cmap

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn`` on a thread (the client is synchronous), remembered so that an exit waits
        for it before closing the client under it."""
        fut = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self.threads.add(fut)
        fut.add_done_callback(self._forget)
        return await asyncio.shield(fut)

    def _forget(self, fut: asyncio.Future[Any]) -> None:
        self.threads.discard(fut)
        if not fut.cancelled():
            fut.exception()  # retrieved: a call whose caller went away is not an error

    async def refresh(self) -> bool:
        """Fetch the map once; keep it if it is not older than ours. Returns success."""
        try:
            cmap = await self._in_thread(self.client.cluster_map, MAP_TIMEOUT_S)
        except RackError as exc:
            self.map_problems.report(exc)
            return False
        self.map_problems.cleared()
        if self.cmap is None or cmap.epoch > self.cmap.epoch:
            self.cmap = cmap  # same epoch: keep the old one, and the placement cached for it
        return True

    async def first_map(self) -> None:
        """Until there is a map that has the pools this workload uses."""
        pools = {self.s.pool} | ({self.s.checkpoint[0]} if self.s.checkpoint else set())
        missing = Problems("finding the pools")
        while not (
            await self.refresh() and self.cmap is not None and pools <= set(self.cmap.pools)
        ):
            if self.cmap is not None:
                names = ", ".join(sorted(pools - set(self.cmap.pools)))
                missing.report(StreamError(f"the map has no pool {names} yet"), names)
            await asyncio.sleep(RETRY_S)

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(MAP_EVERY_S)
            await self.refresh()

    async def _read(self, pool: str, name: str) -> bytearray:
        buf = bytearray()
        await self.objects.get(pool, name, buf.extend)
        return buf

    async def _read_until_done(self, pool: str, name: str) -> bytearray | None:
        """The object's bytes, or None if there is none; retried while the rack cannot
        tell (never guess: a wrong "none" would restart the stream from frame 0)."""
        while True:
            try:
                data = await self._read(pool, name)
            except NotFound:
                return None
            except RackError as exc:
                self.read_problems.report(exc)
                await asyncio.sleep(RETRY_S)
                continue
            self.read_problems.cleared()
            return data

    async def read_checkpoint(self) -> Checkpoint | None:
        if self.s.checkpoint is None:
            return None
        data = await self._read_until_done(*self.s.checkpoint)
        if data is None:
            return None
        try:
            return Checkpoint.decode(data)
        except StreamError as exc:
            log.warning("%s; starting from frame 0", exc)
            return None

    async def read_video(self) -> Video:
        data = await self._read_until_done(self.s.pool, self.s.name)
        if data is None:
            raise StreamError(f"there is no video {self.s.video}: store one with rack put")
        return parse_video(data)

    async def write_checkpoint(self, cp: Checkpoint) -> None:
        assert self.s.checkpoint is not None
        pool, name = self.s.checkpoint
        await self.objects.put(pool, name, io.BytesIO(cp.encode()))  # in memory: no thread

    async def close(self) -> None:
        """Close the data link; the client too, once no thread is using it."""
        self.link.close()
        if self.threads:
            await asyncio.wait(self.threads, timeout=MAP_TIMEOUT_S + 0.5)
        if not self.threads:
            self.client.close()


# ---- one instance ----------------------------------------------------------------------


def _say(line: str) -> None:
    print(line, flush=True)


class Stream:
    """One instance of the workload, from binding its port to its exit status."""

    def __init__(self, s: Settings, conf: ClientConfig, say: Callable[[str], None] = _say) -> None:
        self.s = s
        self.conf = conf
        self.say = say
        self.show = Show(s.node, s.generation, s.fps)
        self.http = HttpFront(self.show)
        self.stop = asyncio.Event()
        self.stale: str | None = None
        self.failed: BaseException | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.cp_problems = Problems("writing the checkpoint")
        self.began = time.monotonic()
        self.port = s.port

    async def run(self) -> int:
        """Serve until SIGTERM (exit 0, after a last checkpoint), a stale fence (exit
        ``EXIT_STALE``) or a failure (raised)."""
        try:
            server = await asyncio.start_server(self.http.handle, self.s.address, self.s.port)
        except OSError as exc:
            raise StreamError(
                f"cannot serve HTTP on {self.s.address}:{self.s.port}: {exc.strerror}"
            ) from None
        self.port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        rack: Rack | None = None
        try:
            rack = Rack(self.s, Client(self.conf))
            self._spawn(self._start(rack))
            await self.stop.wait()
        finally:
            server.close()
            self.http.close_all()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if rack is not None:
                if self.stale is None and self.failed is None and self.show.positioned.is_set():
                    await self._checkpoint(rack, LAST_CHECKPOINT_S, last=True)
                await rack.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if self.failed is not None:
            raise self.failed
        if self.stale is not None:
            print(f"{PROG}: {self.stale}", file=sys.stderr, flush=True)
            return EXIT_STALE
        return 0

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.failed = self.failed or exc
            self.stop.set()

    def _go_stale(self, why: str) -> None:
        self.stale = (
            f"generation {self.s.generation} of container {self.s.container} is stale ({why}): "
            "a newer instance runs elsewhere, so this one stops"
        )
        self.stop.set()

    async def _start(self, rack: Rack) -> None:
        """The checkpoint before the video: ``/frame`` can answer as soon as it is known."""
        await rack.first_map()
        self._spawn(rack.refresh_forever())
        cp = await rack.read_checkpoint()
        if cp is not None and cp.generation > self.s.generation:
            self._go_stale(f"the checkpoint was written by generation {cp.generation}")
            return
        self.show.start(cp.frame if cp is not None else 0)
        positioned = time.monotonic() - self.began
        self.say(
            f"serving frame {self.show.origin} of {self.s.video} at {self.s.address}:"
            f"{self.port} as generation {self.s.generation} on node {self.s.node}"
        )
        if self.s.checkpoint is not None:
            self._spawn(self._checkpoint_forever(rack))
        else:
            log.warning("RACK_VOLUME is not set: no checkpoints, a restart starts at frame 0")
        video = await rack.read_video()
        self.show.load(video)
        log.info(
            "position known %.2f s after start, %d frames of video read after %.2f s",
            positioned,
            video.count,
            time.monotonic() - self.began,
        )

    async def _checkpoint_forever(self, rack: Rack) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + CHECKPOINT_EVERY_S
            await self._checkpoint(rack, CHECKPOINT_TIMEOUT_S)
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def _checkpoint(self, rack: Rack, timeout: float, last: bool = False) -> None:
        """One fenced write of the position; a failure is logged and the stream goes on,
        except a stale fence, which ends this instance."""
        cp = Checkpoint(self.show.frame(), self.s.generation, self.s.node, time.time())
        problem: BaseException
        try:
            async with asyncio.timeout(timeout):
                await rack.write_checkpoint(cp)
        except TimeoutError:
            problem = StreamError(f"the write took longer than {timeout:g} s")
        except RackError as exc:
            problem = exc
        else:
            self.cp_problems.cleared()
            if last:
                log.info("last checkpoint: frame %d", cp.frame)
            return
        refusal = refusal_of(problem)
        if refusal is Refusal.STALE:
            self._go_stale(str(problem))
        elif last:
            log.warning("the last checkpoint (frame %d) failed: %s", cp.frame, problem)
        else:
            self.cp_problems.report(problem, refusal.value if refusal else None)


def main(argv: list[str] | None = None) -> int:
    """``rack-demo-stream --object POOL/NAME [--port 8080] [--address A] [--fps 25]``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{PROG}: %(message)s", stream=sys.stderr)
    isal_lib.install()
    try:
        s = settings_of(args, os.environ)
        conf = load_client_config(s.conf)
        return asyncio.run(Stream(s, conf).run())
    except RackError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
