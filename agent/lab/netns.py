"""Network namespaces, a bridge and veth pairs, through the ``ip`` command.

Every call is an argument list (never a shell string). Names all carry the lab id, so
cleaning up touches only what this lab made.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from agent.errors import LabError


def available() -> str | None:
    """None when netns mode can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "netns mode needs root"
    if shutil.which("ip") is None:
        return "netns mode needs the 'ip' command (iproute2)"
    return None


def ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"'ip {' '.join(args)}' failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def bridge_name(lab_id: str) -> str:
    return f"rcbr-{lab_id}"


def netns_name(lab_id: str, node: str) -> str:
    return f"rc-{lab_id}-{node}"


def veth_name(lab_id: str, index: int) -> str:
    return f"rcv{lab_id}n{index}"  # at most 15 characters (IFNAMSIZ)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no address or route on this machine overlaps."""
    taken = []
    for line in (
        ip("-4", "-o", "addr", "show").splitlines() + ip("-4", "route", "show").splitlines()
    ):
        for word in line.split():
            try:
                taken.append(ipaddress.IPv4Network(word, strict=False))
            except ValueError:
                continue
    for third in range(1, 255):
        candidate = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        if not any(candidate.overlaps(t) for t in taken if t.prefixlen > 0):
            return candidate
    raise LabError("no free /24 left in 10.213.0.0/16 for a lab bridge")


def create_bridge(name: str, gateway: ipaddress.IPv4Interface) -> None:
    ip("link", "add", name, "type", "bridge", "mcast_snooping", "0")
    ip("addr", "add", str(gateway), "dev", name)
    ip("link", "set", name, "up")


def create_node(netns: str, veth: str, bridge: str, address: ipaddress.IPv4Interface) -> None:
    """A namespace whose eth0 is a veth into the bridge, with ``address`` on it."""
    ip("netns", "add", netns)
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    ip("link", "set", veth, "master", bridge)
    ip("link", "set", veth, "up")
    ip("-n", netns, "link", "set", "lo", "up")
    ip("-n", netns, "addr", "add", str(address), "dev", "eth0")
    ip("-n", netns, "link", "set", "eth0", "up", "multicast", "on")


def set_link(veth: str, up: bool) -> None:
    ip("link", "set", veth, "up" if up else "down")


def pids(netns: str) -> list[int]:
    out = ip("netns", "pids", netns, check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


def remove_all(lab_id: str) -> None:
    """Delete every namespace, veth and bridge of this lab; missing ones are fine."""
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"rc-{lab_id}-"):
            ip("netns", "delete", name, check=False)
    for line in ip("-o", "link", "show", check=False).splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(f"rcv{lab_id}n") or name == bridge_name(lab_id):
                ip("link", "delete", name, check=False)


def mount_tmpfs(path: Path, mib: int) -> None:
    """A small disk for the lab (root): a tmpfs of ``mib`` MiB mounted on ``path``."""
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError(f"cannot mount a {mib} MiB tmpfs on {path}: {proc.stderr.strip()}")


def unmount(path: Path) -> None:
    """Unmount a lab disk; one that is not mounted any more is fine."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
