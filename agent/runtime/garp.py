"""Gratuitous ARP: tell the segment that a service address now answers at this node's MAC.

Linux sends no gratuitous ARP on ``ip addr add``, so after the address moves its peers keep
the old owner's MAC until their neighbour entry goes stale and is probed again: 49 s in the
three-namespace test, against about 0.1 s with three GARPs. This is the small AF_PACKET
sender that keepalived and Pacemaker's IPaddr2 also carry. The first GARP goes out at once
(its errors reach the caller); the others are spread over more than a second in a daemon
thread, because a neighbour may ignore a second update within its ``locktime`` (1 s).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
from pathlib import Path

from agent.errors import RackError

log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST = 1
ARP_REPLY = 2
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
MIN_FRAME = 60  # the shortest Ethernet frame without its checksum; pad up to it

_pending: dict[tuple[str, ipaddress.IPv4Address], threading.Event] = {}
_lock = threading.Lock()


class GarpFault(RackError):
    """A gratuitous ARP cannot be sent (no such device, no Ethernet address, not root)."""


def frame(mac: bytes, ip: ipaddress.IPv4Address, op: int) -> bytes:
    """One broadcast GARP frame: sender and target IP are both ``ip``.

    A request (op 1) carries a zero target MAC (RFC 5227's announcement); a reply (op 2)
    carries the sender's MAC there, as Linux requires to take a reply as gratuitous.
    """
    target_mac = mac if op == ARP_REPLY else ZERO_MAC
    ether = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, op) + mac + ip.packed + target_mac + ip.packed
    return (ether + arp).ljust(MIN_FRAME, b"\x00")


def read_mac(dev: str) -> bytes:
    """The Ethernet address of ``dev``, from /sys/class/net (of this network namespace)."""
    if not dev or "/" in dev or dev in {".", ".."}:
        raise GarpFault(f"{dev!r} is not a network device name")
    try:
        text = Path("/sys/class/net", dev, "address").read_text().strip()
    except FileNotFoundError:
        raise GarpFault(f"there is no network device {dev} here") from None
    except OSError as err:
        raise GarpFault(f"cannot read the MAC address of {dev}: {err.strerror or err}") from err
    try:
        mac = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        mac = b""
    if len(mac) != 6 or mac == ZERO_MAC:
        raise GarpFault(f"{dev} has no Ethernet address, so ARP does not apply to it")
    return mac


def send_once(dev: str, ip: ipaddress.IPv4Address) -> None:
    """Broadcast one request-style and one reply-style GARP for ``ip`` on ``dev`` (root)."""
    mac = read_mac(dev)
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:  # sends only
            sock.bind((dev, 0))
            for op in (ARP_REQUEST, ARP_REPLY):
                sock.send(frame(mac, ip, op))
    except PermissionError:
        raise GarpFault(
            f"sending a gratuitous ARP on {dev} needs root (CAP_NET_RAW), so peers keep "
            f"the old MAC for {ip}"
        ) from None
    except OSError as err:
        raise GarpFault(
            f"cannot send a gratuitous ARP for {ip} on {dev}: {err.strerror or err}"
        ) from err


def announce(
    dev: str, ip: ipaddress.IPv4Address, count: int = 3, spread_s: float = 1.2
) -> threading.Thread | None:
    """Send ``count`` GARPs: the first now, the rest evenly over ``spread_s`` seconds.

    Returns the daemon thread sending the rest (None when there is none), for callers that
    must wait for it, such as a short-lived process. A new announcement of the same address
    replaces a pending one; :func:`cancel` stops it when the address is removed, so a node
    never announces an address it no longer holds.
    """
    if count < 1 or spread_s < 0:
        raise GarpFault(f"cannot announce {ip} {count} times over {spread_s} s")
    send_once(dev, ip)
    if count == 1:
        return None
    stop = threading.Event()
    with _lock:
        old = _pending.get((dev, ip))
        if old is not None:
            old.set()
        _pending[(dev, ip)] = stop
    thread = threading.Thread(
        target=_repeat,
        args=(dev, ip, count - 1, spread_s / (count - 1), stop),
        name=f"garp-{dev}-{ip}",
        daemon=True,
    )
    thread.start()
    return thread


def cancel(dev: str, ip: ipaddress.IPv4Address) -> None:
    """Stop the pending GARPs of ``ip`` on ``dev``, if any."""
    with _lock:
        stop = _pending.pop((dev, ip), None)
    if stop is not None:
        stop.set()


def _repeat(
    dev: str, ip: ipaddress.IPv4Address, times: int, interval: float, stop: threading.Event
) -> None:
    """The later GARPs; a failure is logged, since no caller is left to raise it to."""
    try:
        for _ in range(times):
            if stop.wait(interval):
                return
            try:
                send_once(dev, ip)
            except GarpFault as err:
                log.warning("gratuitous ARP not sent: %s", err)
    except Exception:
        log.warning("gratuitous ARP sender for %s on %s failed", ip, dev, exc_info=True)
    finally:
        with _lock:
            if _pending.get((dev, ip)) is stop:
                del _pending[(dev, ip)]
