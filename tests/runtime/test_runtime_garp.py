"""Gratuitous ARP: the frame, its errors, and the regression it exists for.

The measured fact: Linux sends no gratuitous ARP on ``ip addr add``. A client polling a
moved address reached the new owner about 0.1 s after three GARPs; without them it took
49 s (the stale neighbour entry lives about 30 s, then is probed). The three-namespace test
checks the mechanism deterministically -- the client's neighbour entry carries the new
owner's MAC -- and, as a control, that without the announcement it still carries the old
one, so the test can fail.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address

import pytest

from agent.runtime import garp
from agent.runtime.garp import GarpFault
from tests.runtime.netns_helpers import REPO, in_netns, ip, netns_argv

NOT_ROOT = "network namespaces and AF_PACKET sockets need root"
SERVICE_IP = IPv4Address("10.250.77.100")  # private, and only inside the test's namespaces
PORT = 7077
NEIGH_TIMEOUT_S = 5.0  # functional, generous: the GARPs all go out within 1.2 s


# the frame and the errors (no root needed)


def test_a_request_garp_announces_the_address_as_sender_and_target() -> None:
    mac = bytes.fromhex("020000aabbcc")
    frame = garp.frame(mac, SERVICE_IP, garp.ARP_REQUEST)
    assert len(frame) == 60  # padded to the Ethernet minimum
    assert frame[0:6] == b"\xff" * 6 and frame[6:12] == mac
    assert frame[12:14] == b"\x08\x06"  # ARP
    assert frame[14:22] == bytes.fromhex("0001080006040001")  # Ethernet, IPv4, op 1
    assert frame[22:28] == mac and frame[28:32] == SERVICE_IP.packed
    assert frame[32:38] == b"\x00" * 6 and frame[38:42] == SERVICE_IP.packed
    assert frame[42:] == b"\x00" * 18


def test_a_reply_garp_names_the_sender_as_target_too() -> None:
    mac = bytes.fromhex("020000aabbcc")
    frame = garp.frame(mac, SERVICE_IP, garp.ARP_REPLY)
    assert frame[20:22] == b"\x00\x02"
    assert frame[32:38] == mac  # Linux takes a reply as gratuitous only so


def test_a_missing_device_is_a_sentence() -> None:
    with pytest.raises(GarpFault, match="there is no network device rcgtnone here"):
        garp.send_once("rcgtnone", SERVICE_IP)
    with pytest.raises(GarpFault, match="not a network device name"):
        garp.announce("../x", SERVICE_IP)
    with pytest.raises(GarpFault, match="cannot announce"):
        garp.announce("eth0", SERVICE_IP, count=0)


def test_a_failure_in_the_thread_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[str] = []

    def send_once(dev: str, ip: IPv4Address) -> None:
        sent.append(dev)
        if len(sent) > 1:
            raise GarpFault(f"there is no network device {dev} here")

    monkeypatch.setattr(garp, "send_once", send_once)
    with caplog.at_level(logging.WARNING, logger="agent.runtime.garp"):
        thread = garp.announce("rcgtx", SERVICE_IP, count=3, spread_s=0.02)
        assert thread is not None
        thread.join(5)
    assert sent == ["rcgtx"] * 3
    assert [r.getMessage() for r in caplog.records] == [
        "gratuitous ARP not sent: there is no network device rcgtx here"
    ] * 2


def test_cancel_stops_the_pending_announcements(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[float] = []
    monkeypatch.setattr(garp, "send_once", lambda dev, ip: sent.append(time.monotonic()))
    thread = garp.announce("rcgtx", SERVICE_IP, count=3, spread_s=10.0)
    assert thread is not None
    garp.cancel("rcgtx", SERVICE_IP)
    thread.join(5)
    assert not thread.is_alive()
    assert len(sent) == 1  # only the first, sent before announce returned


# real namespaces (root)


@dataclass
class Rack:
    """A bridge in a namespace of its own, and client, A and B on it with 10.250.77.1-3.

    The bridge too lives in a namespace, so nothing of the test touches the machine's own
    network: deleting the namespaces removes every veth and the bridge.
    """

    tag: str
    macs: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{self.tag}{role}"


SERVER = """
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", {port}))
    s.listen()
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        with conn:
            conn.sendall(b"{name}")
"""


@pytest.fixture
def rack() -> Iterator[Rack]:
    rack = Rack(tag=f"rcgt{os.getpid() % 100000}")
    roles = ("br", "c", "a", "b")
    for role in roles:
        ip("netns", "delete", rack.ns(role), check=False)  # a leftover of a killed run
    try:
        bridge_ns = rack.ns("br")
        ip("netns", "add", bridge_ns)
        ip("-n", bridge_ns, "link", "add", "rcgtbr0", "type", "bridge")
        ip("-n", bridge_ns, "link", "set", "rcgtbr0", "up")
        for host, role in enumerate(("c", "a", "b"), start=1):
            netns, veth = rack.ns(role), f"rcgtv{role}"
            ip("netns", "add", netns)
            ip("-n", bridge_ns, "link", "add", veth, "type", "veth", "peer", "eth0", "netns", netns)
            ip("-n", bridge_ns, "link", "set", veth, "master", "rcgtbr0", "up")
            ip("-n", netns, "link", "set", "lo", "up")
            ip("-n", netns, "addr", "add", f"10.250.77.{host}/24", "dev", "eth0")
            ip("-n", netns, "link", "set", "eth0", "up")
            rack.macs[role] = json.loads(ip("-n", netns, "-j", "link", "show", "eth0"))[0][
                "address"
            ]
        for role in ("a", "b"):
            code = SERVER.format(port=PORT, name=role.upper())
            server = subprocess.Popen(
                netns_argv(rack.ns(role), code), cwd=REPO, stdout=subprocess.PIPE, text=True
            )
            rack.procs.append(server)
            assert server.stdout is not None and server.stdout.readline() == "ready\n"
        yield rack
    finally:
        for proc in rack.procs:
            proc.kill()
            proc.wait()
        for role in roles:
            ip("netns", "delete", rack.ns(role), check=False)
    assert not any(name.startswith(rack.tag) for name in ip("netns", "list").split())


OWNER = """
import ipaddress, json, threading, time
from agent.runtime import address
a = address.ServiceAddress(ipaddress.IPv4Address("{ip}"), 24, "eth0")
t0 = time.monotonic()
address.{verb}(a{extra})
t1 = time.monotonic()
for t in threading.enumerate():
    if t.name.startswith("garp-"):
        t.join()  # a short-lived process: let the later GARPs go out
print(json.dumps({{"t0": t0, "t1": t1}}))
"""


def owner(rack: Rack, role: str, verb: str, extra: str = "") -> dict[str, float]:
    code = OWNER.format(ip=SERVICE_IP, verb=verb, extra=extra)
    times: dict[str, float] = json.loads(in_netns(rack.ns(role), code))
    return times


CONNECT = """
import socket
try:
    with socket.create_connection(("{ip}", {port}), timeout={timeout}) as s:
        print(s.recv(16).decode())
except OSError as err:
    print("no answer:", type(err).__name__)
"""

POLLER = """
import socket, time
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("{ip}", {port}), timeout=0.05) as s:
            if s.recv(16) == b"B":
                print(time.monotonic(), flush=True)
                break
    except OSError:
        time.sleep(0.01)
"""


def connect(rack: Rack, timeout: float = 2.0) -> str:
    code = CONNECT.format(ip=SERVICE_IP, port=PORT, timeout=timeout)
    return in_netns(rack.ns("c"), code).strip()


def client_mac(rack: Rack) -> str | None:
    """The MAC in the client's neighbour entry for the service address (None: no entry)."""
    entries = json.loads(
        ip("-n", rack.ns("c"), "-j", "neigh", "show", str(SERVICE_IP), "dev", "eth0") or "[]"
    )
    return entries[0].get("lladdr") if entries else None


def place_on_a(rack: Rack) -> None:
    """A holds the address and the client has talked to it, so it has A's MAC cached."""
    owner(rack, "a", "add", ", announce=False")
    assert connect(rack) == "A"
    assert client_mac(rack) == rack.macs["a"]
    assert rack.macs["a"] != rack.macs["b"]


@pytest.mark.skipif(os.geteuid() != 0, reason=NOT_ROOT)
def test_garp_moves_the_client_to_the_new_owner(rack: Rack) -> None:
    place_on_a(rack)
    poller = subprocess.Popen(
        netns_argv(rack.ns("c"), POLLER.format(ip=SERVICE_IP, port=PORT)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    rack.procs.append(poller)
    owner(rack, "a", "remove")
    times = owner(rack, "b", "add")  # with the announcement
    deadline = time.monotonic() + NEIGH_TIMEOUT_S
    while client_mac(rack) != rack.macs["b"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client_mac(rack) == rack.macs["b"]
    assert connect(rack) == "B"
    out, _ = poller.communicate(timeout=30)
    reached = float(out)
    print(
        f"client reached B {reached - times['t0']:.3f} s after add() began on B "
        f"(add() itself, with the first GARP, took {times['t1'] - times['t0']:.3f} s)"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason=NOT_ROOT)
def test_without_the_announcement_the_client_keeps_the_old_mac(rack: Rack) -> None:
    place_on_a(rack)
    owner(rack, "a", "remove")
    owner(rack, "b", "add", ", announce=False")
    assert client_mac(rack) == rack.macs["a"]
    time.sleep(1.5)  # past the whole spread of the GARPs the other test sends
    assert client_mac(rack) == rack.macs["a"]
    assert connect(rack, timeout=1.0) != "B"  # its packets still go to A, which drops them


@pytest.mark.skipif(os.geteuid() != 0, reason=NOT_ROOT)
def test_without_net_raw_the_error_is_a_sentence(rack: Rack) -> None:
    code = (
        "import ipaddress\n"
        "from agent.runtime import garp\n"
        "try:\n"
        "    garp.send_once('eth0', ipaddress.IPv4Address('10.250.77.100'))\n"
        "except garp.GarpFault as err:\n"
        "    print(err)\n"
    )
    drop_caps = ("setpriv", "--bounding-set=-all", "--inh-caps=-all")  # root, but no caps
    out = in_netns(rack.ns("b"), code, *drop_caps)
    assert out.startswith("sending a gratuitous ARP on eth0 needs root (CAP_NET_RAW)")
