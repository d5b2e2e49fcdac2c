"""A flaky link for one lab node: netem's delay, jitter and loss, in userspace.

The lab must show that a slow, lossy link is not a dead node (no ``down`` vote, no
failover), but a kernel without ``sch_netem`` cannot impair a veth with ``tc``. So the
node's host-side veth leaves the bridge, a new veth pair takes its place (its ``fb`` end
a bridge port), and a forwarder process (``python -m agent.lab.flaky``) moves every
Ethernet frame between the node's veth and the pair's ``fa`` end through AF_PACKET
sockets: each frame is lost with probability ``loss``, else sent on after ``delay`` plus
a uniform ``±jitter`` (a heap, so frames reorder as with netem). The node's veth stays
the link ``kill`` and ``partition`` toggle, so a cut still cuts an impaired node.

Frames must cross as the wire would carry them, whole and with their checksums:

- the node's ``eth0`` and the bridge port ``fb`` get checksum and segmentation offloads
  off, so the stack checksums and segments in software before a frame reaches a socket
  (a checksum left to "hardware" arrives unfilled, and a 64 KiB TSO segment is refused by
  ``sendto``); GRO is off on the two ends the forwarder reads, so nothing is merged back;
- the two ends in the root namespace get ARP and IPv6 off: they are no bridge ports any
  more, so the root namespace would answer ARP for the bridge's address with their MACs;
- the bridge's MAC is pinned: it follows its lowest port's otherwise, and changes
  (breaking every node's ARP entry for it) when ports come and go. And the node's veth
  gets a MAC of its own meanwhile: it may have been that lowest port, and a veth with the
  bridge's MAC hands the node's frames for the bridge to the root namespace at once,
  undelayed (and the forwarder delivers them a second time).

What :func:`impair_link` changes is recorded in ``<lab dir>/flaky-<node>.json`` as it is
changed, so :func:`restore_link` (and ``rack lab down``) can always undo it. The
pair's names start like the node's veth, so the lab's own cleanup deletes them too, and
a forwarder whose interfaces are gone stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from agent.errors import LabError
from agent.lab import netns, state
from agent.lab.state import LabNode, LabState

if TYPE_CHECKING:
    from agent.lab.rack import Lab

MODULE = "agent.lab.flaky"
RUN = [sys.executable, "-c", f"import sys; from {MODULE} import main; sys.exit(main())"]
"""How the lab runs this module: ``-m`` would import it twice (the package imports it
first, for :class:`Impairments`) and warn about that."""
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


# ---- impairing a lab node's link -------------------------------------------------------


class Impairment(msgspec.Struct, kw_only=True):
    """What impairing one node changed, saved as each change is made."""

    node: str
    veth: str
    netns: str
    bridge: str
    forwarder_end: str
    bridge_end: str
    delay: float
    jitter: float
    loss: float
    seed: int | None = None
    pid: int | None = None
    eth0_offloads: dict[str, int] | None = None
    veth_offloads: dict[str, int] | None = None
    veth_ipv6_disabled: str | None = None
    veth_address: str | None = None
    attached: bool = False
    """The pair's end is the bridge port and the node's veth is not."""


def record_path(lab_dir: Path, node: str) -> Path:
    return lab_dir / f"flaky-{node}.json"


def log_path(lab_dir: Path, node: str) -> Path:
    return lab_dir / f"flaky-{node}.log"


def pair_names(veth: str) -> tuple[str, str]:
    """The pair's forwarder end and bridge end: the node's veth name (``rcv<id>n<i>``),
    so the lab's cleanup deletes them, plus ``fa``/``fb`` (at most 15 characters)."""
    return f"{veth}fa", f"{veth}fb"


def impaired(lab_dir: Path) -> list[str]:
    """The nodes whose link is impaired (a record exists)."""
    return sorted(p.name[len("flaky-") : -len(".json")] for p in lab_dir.glob("flaky-*.json"))


def _save(lab_dir: Path, rec: Impairment) -> None:
    path = record_path(lab_dir, rec.node)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(rec)))
    os.replace(tmp, path)


def _load(lab_dir: Path, node: str) -> Impairment | None:
    try:
        return msgspec.json.decode(record_path(lab_dir, node).read_bytes(), type=Impairment)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise LabError(f"the impairment record of {node} is unreadable: {exc}") from None


def _ipv6_flag(ifname: str) -> Path:
    return Path("/proc/sys/net/ipv6/conf", ifname, "disable_ipv6")


def _set_ipv6_disabled(ifname: str, value: str) -> str | None:
    """Write ``disable_ipv6``; returns what it was (None without IPv6)."""
    flag = _ipv6_flag(ifname)
    try:
        before = flag.read_text(encoding="ascii").strip()
        flag.write_text(value, encoding="ascii")
    except OSError:
        return None
    return before


def _ip_batch(commands: list[str]) -> None:
    """Several ``ip`` commands in one process, so a link swap leaves almost no gap."""
    proc = subprocess.run(
        ["ip", "-batch", "-"],
        input="".join(c + "\n" for c in commands),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError(f"'ip -batch' failed: {proc.stderr.strip() or proc.returncode}")


def _address(ifname: str) -> str:
    info = json.loads(netns.ip("-j", "link", "show", "dev", ifname))
    return str(info[0]["address"])


def _random_address() -> str:
    """A locally administered unicast MAC."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{o:02x}" for o in octets)


def _start_forwarder(lab_dir: Path, rec: Impairment) -> int:
    cmd = [*RUN, "--a", rec.veth, "--b", rec.forwarder_end]
    cmd += ["--delay", repr(rec.delay), "--jitter", repr(rec.jitter), "--loss", repr(rec.loss)]
    if rec.seed is not None:
        cmd += ["--seed", str(rec.seed)]
    with open(log_path(lab_dir, rec.node), "ab") as logf:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=logf,
            start_new_session=True,
        )
    assert proc.stdout is not None
    with proc.stdout:
        readable, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
        line = proc.stdout.readline() if readable else b""
    if line.strip() != b"ready":
        _terminate(proc.pid, rec.veth)
        tail = log_path(lab_dir, rec.node).read_text(errors="replace").strip().splitlines()
        raise LabError(f"the forwarder for {rec.node} did not start: {' | '.join(tail[-3:])}")
    return proc.pid


def impair_link(lab_dir: Path, st: LabState, node: LabNode, netem: Netem) -> None:
    """Put a forwarder between ``node``'s veth and the bridge (netns mode)."""
    netem.check()
    if _load(lab_dir, node.name) is not None:
        raise LabError(f"node {node.name}'s link is already impaired; restore it first")
    if st.mode != "netns" or not (node.veth and node.netns and st.bridge):
        raise LabError("impairing a link needs netns mode (run 'rack lab up' as root)")
    fa, fb = pair_names(node.veth)
    rec = Impairment(
        node=node.name,
        veth=node.veth,
        netns=node.netns,
        bridge=st.bridge,
        forwarder_end=fa,
        bridge_end=fb,
        delay=netem.delay,
        jitter=netem.jitter,
        loss=netem.loss,
        seed=netem.seed,
    )
    _save(lab_dir, rec)
    try:
        netns.ip("link", "set", st.bridge, "address", _address(st.bridge))
        netns.ip("link", "add", fa, "type", "veth", "peer", "name", fb)
        set_offloads(fa, NO_GRO)
        set_offloads(fb, NO_SEGMENTS)
        for end in (fa, fb):
            _set_ipv6_disabled(end, "1")
        rec.veth_offloads = set_offloads(node.veth, NO_GRO)
        rec.veth_ipv6_disabled = _set_ipv6_disabled(node.veth, "1")
        _save(lab_dir, rec)
        rec.eth0_offloads = set_offloads_in(node.netns, "eth0", NO_SEGMENTS)
        _save(lab_dir, rec)
        netns.ip("link", "set", fa, "arp", "off", "up")
        netns.ip("link", "set", node.veth, "arp", "off")
        rec.pid = _start_forwarder(lab_dir, rec)
        rec.veth_address, rec.attached = _address(node.veth), True
        _save(lab_dir, rec)
        _ip_batch(
            [
                f"link set {node.veth} nomaster",
                f"link set {node.veth} address {_random_address()}",
                f"link set {fb} master {st.bridge}",
                f"link set {fb} up",
            ]
        )
    except BaseException:
        with contextlib.suppress(Exception):
            restore_link(lab_dir, node.name)
        raise


def restore_link(lab_dir: Path, name: str) -> bool:
    """Undo :func:`impair_link` as far as anything of it is left; False if the node was
    not impaired. Every step is tried, and what failed is raised at the end (the record
    stays, so a second restore tries again)."""
    rec = _load(lab_dir, name)
    if rec is None:
        return False
    problems: list[str] = []

    def step(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except (LabError, OSError) as exc:
            problems.append(f"{what}: {exc}")

    if rec.pid is not None:
        step("stop the forwarder", lambda: _terminate(rec.pid or 0, rec.veth))
    veth_there = _link_exists(rec.veth)
    if rec.veth_address is not None and veth_there:
        mac = rec.veth_address
        step("restore the veth's MAC", lambda: netns.ip("link", "set", rec.veth, "address", mac))
    if rec.attached and veth_there:
        step("re-attach the veth", lambda: netns.ip("link", "set", rec.veth, "master", rec.bridge))
    if _link_exists(rec.forwarder_end):
        step("delete the pair", lambda: netns.ip("link", "delete", rec.forwarder_end))
    if veth_there:
        step("turn ARP back on", lambda: netns.ip("link", "set", rec.veth, "arp", "on"))
        if rec.veth_ipv6_disabled is not None:
            step(
                "restore IPv6", lambda: _set_ipv6_disabled(rec.veth, rec.veth_ipv6_disabled or "0")
            )
        if rec.veth_offloads is not None:
            step("restore offloads", lambda: set_offloads(rec.veth, rec.veth_offloads or {}))
    if rec.eth0_offloads is not None and netns.exists(rec.netns):
        step(
            "restore eth0's offloads",
            lambda: set_offloads_in(rec.netns, "eth0", rec.eth0_offloads or {}),
        )
    if problems:
        raise LabError(f"restoring {name}'s link did not fully work: {'; '.join(problems)}")
    record_path(lab_dir, name).unlink(missing_ok=True)
    return True


def _link_exists(ifname: str) -> bool:
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        return False
    return True


def _is_forwarder(pid: int, veth: str) -> bool:
    """Guard against a recycled pid: only the forwarder of this veth is signalled."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1]
    except (OSError, IndexError):
        return False
    ours = any(MODULE.encode() in a for a in args) and veth.encode() in args
    return ours and status.split()[0] != "Z"


def _terminate(pid: int, veth: str) -> None:
    """SIGTERM, then SIGKILL after a grace period; reaped if it is our child."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _is_forwarder(pid, veth):
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + STOP_GRACE_S
        while _is_forwarder(pid, veth) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.02)
    _reap(pid)
    if _is_forwarder(pid, veth):
        raise LabError(f"the forwarder (pid {pid}) does not exit")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class Impairments:
    """The flaky-link methods of :class:`agent.lab.Lab` (a mixin keeps that class small)."""

    dir: Path
    progress: Callable[[str], None]

    def impair(
        self, name: str, delay: float, jitter: float, loss: float, seed: int | None = None
    ) -> None:
        """Delay every frame of node ``name``'s link by ``delay ± jitter`` seconds and lose
        a ``loss`` fraction, both ways, until :meth:`restore` (netns mode)."""
        st = state.require(self.dir)
        node = st.node(name)
        if st.mode != "netns":
            raise LabError(
                "impairing a link needs netns mode (run 'rack lab up' as root); "
                "in loopback mode all nodes share 127.0.0.1"
            )
        impair_link(self.dir, st, node, Netem(delay, jitter, loss, seed))

    def restore(self, name: str) -> None:
        """Give node ``name`` its plain bridge port back; a node not impaired is fine."""
        restore_link(self.dir, name)

    def restore_all(self) -> None:
        """Restore every impaired link, reporting failures rather than raising (for down)."""
        for name in impaired(self.dir):
            try:
                restore_link(self.dir, name)
            except LabError as exc:
                self.progress(str(exc))
                record_path(self.dir, name).unlink(missing_ok=True)


@contextlib.contextmanager
def flaky(
    lab: Lab,
    node: str,
    *,
    delay: float,
    jitter: float = 0.0,
    loss: float = 0.0,
    seed: int | None = None,
) -> Iterator[None]:
    """``with flaky(lab, "n2", delay=0.1, loss=0.05): ...``: impaired inside, restored after."""
    lab.impair(node, delay, jitter, loss, seed)
    try:
        yield
    finally:
        lab.restore(node)


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
        prog="python -m agent.lab.flaky",
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
