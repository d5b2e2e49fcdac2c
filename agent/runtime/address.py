"""The container's service address, which moves with the container between nodes.

In netns mode it is a secondary address on the node's interface, announced with
gratuitous ARP, as keepalived and Pacemaker's IPaddr2 do (Linux announces nothing on
``ip addr add``). The agent already runs inside its node's network namespace, so ``ip``
acts on it directly. In loopback mode the address is its own 127.x address: Linux routes
all of 127.0.0.0/8 to ``lo``, so there is nothing to add, only to check.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import subprocess
from collections.abc import Iterable, Set
from dataclasses import dataclass

from agent.errors import RackError
from agent.runtime import garp

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


class AddressFault(RackError):
    """The service address cannot be added, removed or checked on this node."""


@dataclass(frozen=True)
class ServiceAddress:
    """An address and its prefix on ``dev``; ``dev`` None means loopback mode."""

    ip: ipaddress.IPv4Address
    prefixlen: int
    dev: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.prefixlen <= 32:
            raise AddressFault(
                f"prefix length {self.prefixlen} of service address {self.ip} is not "
                "between 0 and 32"
            )

    @property
    def interface(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface((self.ip, self.prefixlen))

    def __str__(self) -> str:
        return f"{self.interface} on {self.dev}" if self.dev else f"{self.ip} (loopback)"


def add(addr: ServiceAddress, *, announce: bool = True) -> None:
    """Put the address on this node (idempotent), then announce it with gratuitous ARP.

    ``announce=False`` is for tests that show what happens without the announcement.
    """
    if addr.dev is None:
        _check_loopback(addr.ip)
        return
    proc = _ip("addr", "add", str(addr.interface), "dev", addr.dev)
    there = ("File exists", "Address already assigned")  # older and newer kernels
    if proc.returncode != 0 and not any(text in proc.stderr for text in there):
        raise AddressFault(f"cannot add service address {addr}: {_why(proc)}")
    if announce:
        try:
            garp.announce(addr.dev, addr.ip)
        except garp.GarpFault as err:
            raise AddressFault(str(err)) from err


def remove(addr: ServiceAddress) -> None:
    """Take the address off this node; one that is absent already (or its device) is fine.

    Pending announcements stop first, so this node never claims an address it gave up.
    """
    if addr.dev is None:
        return
    garp.cancel(addr.dev, addr.ip)
    proc = _ip("addr", "del", str(addr.interface), "dev", addr.dev)
    absent = ("Cannot assign requested address", "Address not found", "Cannot find device")
    if proc.returncode != 0 and not any(text in proc.stderr for text in absent):
        raise AddressFault(f"cannot remove service address {addr}: {_why(proc)}")


def present(addr: ServiceAddress) -> bool:
    """Whether this node holds the address now (any prefix length counts)."""
    if addr.dev is None:
        return addr.ip in LOOPBACK and _bind_error(addr.ip) is None
    return any(iface.ip == addr.ip for iface in held(addr.dev))


def held(dev: str) -> list[ipaddress.IPv4Interface]:
    """Every IPv4 address on ``dev``."""
    proc = _ip("-o", "-4", "addr", "show", "dev", dev)
    if proc.returncode != 0:
        raise AddressFault(f"cannot list the addresses of {dev}: {_why(proc)}")
    return [
        ipaddress.IPv4Interface(following)
        for line in proc.stdout.splitlines()
        for word, following in itertools.pairwise(line.split())
        if word == "inet"
    ]


def flush(dev: str, pool: ipaddress.IPv4Network, keep: Set[ipaddress.IPv4Address]) -> list[str]:
    """Remove every service address of ``pool`` from ``dev`` but ``keep``; what was removed.

    An agent that starts after a crash runs no container yet, so any service address still
    on its interface is a stale one: left there, this node would answer ARP for an address
    that has moved to another node."""
    removed = []
    for iface in held(dev):
        if iface.ip in pool and iface.ip not in keep:
            remove(ServiceAddress(ip=iface.ip, prefixlen=iface.network.prefixlen, dev=dev))
            removed.append(str(iface.ip))
    return removed


def pick_free(
    pool: ipaddress.IPv4Network | Iterable[ipaddress.IPv4Address],
    taken: Set[ipaddress.IPv4Address],
) -> ipaddress.IPv4Address | None:
    """The lowest address of the rack's pool that no container holds; None when all are.

    A network pool yields only its hosts (no network or broadcast address); a list is
    taken as given, in its order.
    """
    candidates = pool.hosts() if isinstance(pool, ipaddress.IPv4Network) else pool
    return next((ip for ip in candidates if ip not in taken), None)


def _check_loopback(ip: ipaddress.IPv4Address) -> None:
    if ip not in LOOPBACK:
        raise AddressFault(
            f"service address {ip} has no device, and without one (loopback mode) only "
            "127.0.0.0/8 addresses work"
        )
    error = _bind_error(ip)
    if error is not None:
        raise AddressFault(f"service address {ip} cannot be bound here: {error}")


def _bind_error(ip: ipaddress.IPv4Address) -> str | None:
    """Why a socket cannot bind to ``ip`` (None when it can): what a container needs."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((str(ip), 0))
    except OSError as err:
        return str(err.strerror or err)
    return None


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` (an argument list, never a shell) with its messages in English."""
    try:
        return subprocess.run(
            ["ip", *args],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
            timeout=30,
        )
    except FileNotFoundError:
        raise AddressFault(
            "the 'ip' command (iproute2) is not installed, so service addresses cannot move"
        ) from None
    except subprocess.TimeoutExpired:
        raise AddressFault(f"'ip {' '.join(args)}' did not finish within 30 s") from None


def _why(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stderr.strip().removeprefix("RTNETLINK answers: ") or f"exit {proc.returncode}"
