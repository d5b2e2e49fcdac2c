"""Netem in userspace: a forwarder that moves Ethernet frames between two interfaces,
losing each with probability ``loss`` and delivering the rest after ``delay ± jitter``
(a heap, so frames reorder as with netem), and the offload switches it needs.

This kernel has no ``sch_netem``; :mod:`agent.lab.flaky` puts this forwarder between a
lab node's veth and the bridge. It runs as its own process (``python -c`` on :func:`main`,
so the lab package is not imported twice) until SIGTERM, printing ``ready`` once both
sockets are open and its counts to stderr at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import heapq
import json
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.errors import LabError

RUN = [sys.executable, "-c", "import sys; from agent.lab.netem import main; sys.exit(main())"]
"""How the lab runs the forwarder: ``-m`` would import the module twice (the lab package
imports it first) and warn about that."""
ETH_P_ALL = 0x0003
SOL_PACKET = 263
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32
"""Not in every typeshed: Linux's values."""
PACKET_IGNORE_OUTGOING = 23
"""Linux >= 4.20: no copies of the socket's own sends (the packet type is checked too)."""
SOCKET_BUFFER = 8 * 1024 * 1024
FRAME_BUFFER = 256 * 1024
"""Larger than any frame (a merged one is read whole, and refused when sent on)."""
BURST = 256
"""Frames read from one socket before the queue is looked at again."""
QUEUE_LIMIT = 20000
"""Frames held at once (netem's default is 1000 per qdisc); more are lost."""
CHECK_EVERY_S = 1.0
READY_TIMEOUT_S = 10.0
STOP_GRACE_S = 2.0
MAX_DELAY_S = 60.0

SIOCETHTOOL = 0x8946
OFFLOADS = {
    "tx": (0x16, 0x17),
    "sg": (0x18, 0x19),
    "tso": (0x1E, 0x1F),
    "gso": (0x23, 0x24),
    "gro": (0x2B, 0x2C),
}
"""Legacy ethtool get/set commands (ETHTOOL_GTXCSUM ...), applied in this order (checksum
before TSO, which needs it); there may be no ``ethtool`` binary."""
NO_SEGMENTS = {"tx": 0, "tso": 0, "gso": 0}
NO_GRO = {"gro": 0}


# ---- offloads --------------------------------------------------------------------------


def _ethtool(ifname: str, cmd: int, data: int = 0) -> int:
    value = ctypes.create_string_buffer(struct.pack("II", cmd, data), 8)  # ethtool_value
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value)).ljust(40, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    return int(struct.unpack("II", value.raw)[1])


def offloads(ifname: str) -> dict[str, int]:
    """The offloads of an interface of this namespace, 1 on and 0 off."""
    try:
        return {name: _ethtool(ifname, get) for name, (get, _set) in OFFLOADS.items()}
    except OSError as exc:
        raise LabError(f"cannot read the offloads of {ifname}: {exc.strerror}") from None


def set_offloads(ifname: str, wanted: dict[str, int]) -> dict[str, int]:
    """Set some offloads; returns all of them as they were before."""
    before = offloads(ifname)
    for name in OFFLOADS:
        if name in wanted and wanted[name] != before[name]:
            try:
                _ethtool(ifname, OFFLOADS[name][1], wanted[name])
            except OSError as exc:
                raise LabError(f"cannot set {name} offload on {ifname}: {exc.strerror}") from None
    return before


def set_offloads_in(ns: str, ifname: str, wanted: dict[str, int]) -> dict[str, int]:
    """:func:`set_offloads` inside a namespace (the ioctl acts on the caller's)."""
    spec = ",".join(f"{k}={v}" for k, v in wanted.items())
    cmd = ["ip", "netns", "exec", ns, *RUN, "--offloads", ifname]
    proc = subprocess.run(
        [*cmd, "--set", spec],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if proc.returncode != 0:
        raise LabError(f"cannot set offloads of {ifname} in {ns}: {proc.stderr.strip()}")
    before: dict[str, int] = json.loads(proc.stdout)
    return before


# ---- the forwarder ---------------------------------------------------------------------


@dataclass(slots=True)
class Netem:
    """What a flaky link does to each frame, one way (both ways get the same)."""

    delay: float
    jitter: float = 0.0
    loss: float = 0.0
    seed: int | None = None

    def check(self) -> None:
        if not 0 <= self.delay <= MAX_DELAY_S:
            raise LabError(f"a delay is 0 to {MAX_DELAY_S:g} s, not {self.delay:g}")
        if not 0 <= self.jitter <= MAX_DELAY_S:
            raise LabError(f"a jitter is 0 to {MAX_DELAY_S:g} s, not {self.jitter:g}")
        if not 0 <= self.loss <= 1:
            raise LabError(f"a loss is a probability from 0 to 1, not {self.loss:g}")


@dataclass(slots=True)
class Counts:
    """One direction's frames."""

    forwarded: int = 0
    lost: int = 0
    over_limit: int = 0
    send_failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def failed(self, exc: OSError) -> None:
        self.send_failed += 1
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        self.errors[name] = self.errors.get(name, 0) + 1


class _Stopped(Exception):
    """SIGTERM or SIGINT: leave the loop, report, exit."""


def _stop(_sig: int, _frame: object) -> None:
    raise _Stopped


def packet_socket(ifname: str) -> socket.socket:
    """A raw socket that sees every frame ``ifname`` receives, and sends on it."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # no frames until bound
    for opt in (SO_RCVBUFFORCE, SO_SNDBUFFORCE):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
    with contextlib.suppress(OSError):
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def forward(
    ifaces: tuple[str, str],
    netem: Netem,
    ready: Callable[[], None] = lambda: None,
    limit: int = QUEUE_LIMIT,
) -> tuple[list[Counts], str]:
    """Move frames both ways until SIGTERM or an interface is gone; returns the counts
    (``ifaces[0]`` to ``ifaces[1]``, then back) and why it stopped."""
    socks = [packet_socket(name) for name in ifaces]
    index = [socket.if_nametoindex(name) for name in ifaces]
    rng = random.Random(netem.seed)
    counts = [Counts(), Counts()]
    queue: list[tuple[float, int, int, bytes]] = []  # due, arrival order, from side, frame
    order = 0
    buf = bytearray(FRAME_BUFFER)
    view = memoryview(buf)
    next_check = time.monotonic() + CHECK_EVERY_S
    old = [signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)]
    ready()
    try:
        while True:
            now = time.monotonic()
            wake = min(next_check, queue[0][0]) if queue else next_check
            readable, _, _ = select.select(socks, [], [], max(0.0, wake - now))
            now = time.monotonic()
            for side, sock in enumerate(socks):
                if sock not in readable:
                    continue
                for _ in range(BURST):
                    try:
                        size, addr = sock.recvfrom_into(buf)
                    except OSError:  # nothing left, or the link went down (ENETDOWN)
                        break
                    if addr[2] == socket.PACKET_OUTGOING:
                        continue
                    if rng.random() < netem.loss:
                        counts[side].lost += 1
                    elif len(queue) >= limit:
                        counts[side].over_limit += 1
                    else:
                        wait = netem.delay + rng.uniform(-netem.jitter, netem.jitter)
                        heapq.heappush(
                            queue, (now + max(0.0, wait), order, side, view[:size].tobytes())
                        )
                        order += 1
            now = time.monotonic()
            while queue and queue[0][0] <= now:
                _due, _order, side, frame = heapq.heappop(queue)
                try:
                    socks[1 - side].send(frame)
                    counts[side].forwarded += 1
                except OSError as exc:  # link down (partition), or a frame too large
                    counts[side].failed(exc)
            if now >= next_check:
                next_check = now + CHECK_EVERY_S
                for name, want in zip(ifaces, index, strict=True):
                    try:
                        if socket.if_nametoindex(name) != want:
                            return counts, f"interface {name} was replaced"
                    except OSError:
                        return counts, f"interface {name} is gone"
    except _Stopped:
        return counts, "stopped"
    finally:
        for s, handler in zip((signal.SIGTERM, signal.SIGINT), old, strict=True):
            signal.signal(s, handler)
        for sock in socks:
            sock.close()


def describe(ifaces: tuple[str, str], counts: list[Counts]) -> str:
    parts = []
    for (src, dst), c in zip((ifaces, ifaces[::-1]), counts, strict=True):
        text = (
            f"{src} -> {dst}: {c.forwarded} forwarded, {c.lost} lost, "
            f"{c.over_limit} over the queue limit, {c.send_failed} failed to send"
        )
        if c.errors:
            text += " (" + ", ".join(f"{k} {v}" for k, v in sorted(c.errors.items())) + ")"
        parts.append(text)
    return "; ".join(parts)


# ---- command line ----------------------------------------------------------------------


def _parse_spec(spec: str) -> dict[str, int]:
    out = {}
    for part in filter(None, spec.split(",")):
        key, _, value = part.partition("=")
        if key not in OFFLOADS or value not in ("0", "1"):
            raise LabError(
                f"{part!r} is not an offload setting such as tx=0 ({', '.join(OFFLOADS)})"
            )
        out[key] = int(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.lab.netem",
        description="forward frames between two interfaces with netem-like delay and loss",
    )
    parser.add_argument("--a", metavar="IF", help="one interface")
    parser.add_argument("--b", metavar="IF", help="the other interface")
    parser.add_argument("--delay", type=float, default=0.0, metavar="S")
    parser.add_argument("--jitter", type=float, default=0.0, metavar="S")
    parser.add_argument("--loss", type=float, default=0.0, metavar="P")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--limit", type=int, default=QUEUE_LIMIT, help="frames held at most")
    parser.add_argument("--offloads", metavar="IF", help="instead: print IF's offloads (JSON)")
    parser.add_argument("--set", default="", metavar="K=V,...", help="with --offloads: set some")
    args = parser.parse_args(argv)
    try:
        if args.offloads:
            before = set_offloads(args.offloads, _parse_spec(args.set))
            print(json.dumps(before))
            return 0
        if not (args.a and args.b):
            parser.error("give both interfaces: --a IF --b IF")
        netem = Netem(args.delay, args.jitter, args.loss, args.seed)
        netem.check()

        def ready() -> None:
            print("ready", flush=True)
            print(
                f"flaky: forwarding {args.a} <-> {args.b} with {netem}", file=sys.stderr, flush=True
            )

        ifaces = (args.a, args.b)
        counts, why = forward(ifaces, netem, ready, args.limit)
    except (LabError, OSError) as exc:
        print(f"flaky: {exc}", file=sys.stderr)
        return 1
    print(f"flaky: {why}; {describe(ifaces, counts)}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
