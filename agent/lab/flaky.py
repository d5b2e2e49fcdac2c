"""A flaky link for one lab node: netem's delay, jitter and loss, in userspace.

The lab must show that a slow, lossy link is not a dead node (no ``down`` vote, no
failover), but a kernel without ``sch_netem`` cannot impair a veth with ``tc``. So the
node's host-side veth leaves the bridge, a new veth pair takes its place (its ``fb`` end
a bridge port), and a forwarder process (:mod:`agent.lab.netem`) moves every
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

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from agent.errors import LabError
from agent.lab import netns, state
from agent.lab.netem import (
    NO_GRO,
    NO_SEGMENTS,
    READY_TIMEOUT_S,
    RUN,
    STOP_GRACE_S,
    Netem,
    set_offloads,
    set_offloads_in,
)
from agent.lab.state import LabNode, LabState

if TYPE_CHECKING:
    from agent.lab.rack import Lab

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
    ours = any(b"agent.lab.netem" in a for a in args) and veth.encode() in args
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
