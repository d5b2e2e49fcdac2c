"""An agent listens only on the rack interface it was given, never on every interface."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from pathlib import Path

import pytest

from agent.lab import Lab
from agent.lab import state as lab_state

pytestmark = pytest.mark.integration
MDNS_PORT = 5353


def _addr(hex_addr: str) -> tuple[str, int]:
    ip_hex, port_hex = hex_addr.split(":")
    ip = socket.inet_ntoa(struct.pack("<I", int(ip_hex, 16)))
    return ip, int(port_hex, 16)


def sockets_of(pid: int, table: str) -> list[tuple[str, int, str]]:
    """(local ip, local port, state hex) of every IPv4 socket of ``pid`` in /proc/net/<table>."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ip, port = _addr(fields[1])
            out.append((ip, port, fields[3]))
    return out


def test_every_listener_is_on_the_configured_address(loopback_lab: Lab) -> None:
    st = lab_state.require(loopback_lab.dir)
    for lab_node in st.nodes:
        node = lab_node.record
        assert lab_node.pid is not None
        listening = [
            (ip, port) for ip, port, state in sockets_of(lab_node.pid, "tcp") if state == "0A"
        ]
        ports = (node.rpc_port, node.pub_port, node.data_port)
        assert node.data_port > 0
        assert sorted(listening) == sorted((node.address, p) for p in ports)
        udp = sockets_of(lab_node.pid, "udp")
        wildcard = [(ip, port) for ip, port, _ in udp if ipaddress.IPv4Address(ip).is_unspecified]
        # The one wildcard socket is zeroconf's mDNS receiver: multicast is only delivered to
        # a socket bound to the group's port on 0.0.0.0. It joins the group on the
        # configured interface only, and every answer leaves through the socket bound to
        # that interface's address (checked here too).
        assert wildcard == [("0.0.0.0", MDNS_PORT)]
        assert (node.address, MDNS_PORT) in [(ip, port) for ip, port, _ in udp]
        assert all(ip in (node.address, "0.0.0.0") for ip, _, _ in udp)
