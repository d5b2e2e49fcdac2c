"""A flaky link in the netns lab (agent.lab.flaky, netem in userspace): frames are delayed,
lost and reordered, TCP still arrives intact, a partition still cuts, and restore (or
``lab down``) leaves the node's plain bridge port and nothing else behind.

Root only. The probes run inside the nodes' namespaces as small Python programs: the lab
machine need not have ``ping``.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.errors import LabError, RackError, RpcTimeout
from agent.lab import Lab, flaky, netns
from agent.lab import state as lab_state
from agent.lab.state import LabNode, LabState
from agent.record import NodeRecord
from tests.conftest import NETNS_REASON, make_lab, needs_root
from tests.helpers import states, wait_until

pytestmark = pytest.mark.integration

DELAY, JITTER, LOSS = 0.1, 0.05, 0.05
PINGS, PING_EVERY = 100, 0.02
"""100 pings, not 40: a ping is lost with 1 - 0.95^2 = 9.75 % (two crossings), so all 40
would come back 1.6 % of the time and the loss assertion would flake; all 100, 3.5e-5."""

PING = r"""
import json, os, select, socket, struct, sys, time
addr, count, every = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def csum(b):
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident, sent, rtts, order = os.getpid() & 0xFFFF, {}, {}, []
start = time.monotonic()
end = start + count * every + 1.0
seq = 0
while time.monotonic() < end:
    if seq < count and time.monotonic() >= start + seq * every:
        body = b"rackcloud-flaky-" * 3
        head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        packet = struct.pack("!BBHHH", 8, 0, csum(head + body), ident, seq) + body
        sent[seq] = time.monotonic()
        sock.sendto(packet, (addr, 0))
        seq += 1
    wake = start + seq * every if seq < count else end
    ready, _, _ = select.select([sock], [], [], max(0.0, min(wake, end) - time.monotonic()))
    if ready:
        data = sock.recv(4096)
        ihl = (data[0] & 15) * 4
        kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
        if kind == 0 and rid == ident and rseq in sent and rseq not in rtts:
            rtts[rseq] = time.monotonic() - sent[rseq]
            order.append(rseq)
print(json.dumps({"sent": len(sent), "rtts": list(rtts.values()), "order": order}))
"""

SERVE = r"""
import hashlib, socket, sys
srv = socket.create_server(("0.0.0.0", int(sys.argv[1])))
srv.settimeout(120)
print("listening", flush=True)
conn, _ = srv.accept()
conn.settimeout(120)
digest, size = hashlib.sha256(), 0
while chunk := conn.recv(1 << 16):
    digest.update(chunk)
    size += len(chunk)
conn.sendall(f"{size} {digest.hexdigest()}".encode())
conn.close()
"""

SEND = r"""
import random, socket, sys
data = random.Random(int(sys.argv[3])).randbytes(int(sys.argv[4]))
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=120)
conn.sendall(data)
conn.shutdown(socket.SHUT_WR)
print(conn.recv(200).decode())
"""


@dataclass
class Pings:
    sent: int
    rtts: list[float]
    order: list[int]

    @property
    def average_ms(self) -> float:
        return 1000 * sum(self.rtts) / len(self.rtts)


def in_ns(lab: Lab, node: str, code: str, *args: str) -> list[str]:
    ns = lab_state.require(lab.dir).node(node).netns
    assert ns
    return ["ip", "netns", "exec", ns, sys.executable, "-c", code, *args]


def address(lab: Lab, node: str) -> str:
    return lab_state.require(lab.dir).node(node).record.address


def ping(lab: Lab, src: str, dst: str, count: int = PINGS, every: float = PING_EVERY) -> Pings:
    proc = subprocess.run(
        in_ns(lab, src, PING, address(lab, dst), str(count), str(every)),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out = json.loads(proc.stdout)
    return Pings(out["sent"], out["rtts"], out["order"])


def host_ping(addr: str, count: int = 50, every: float = PING_EVERY) -> Pings:
    """Ping from the root namespace (the operator's side of the bridge)."""
    proc = subprocess.run(
        [sys.executable, "-c", PING, addr, str(count), str(every)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out = json.loads(proc.stdout)
    return Pings(out["sent"], out["rtts"], out["order"])


def mac_of(dev: str) -> str:
    return str(json.loads(netns.ip("-j", "link", "show", "dev", dev))[0]["address"])


def transfer(lab: Lab, src: str, dst: str, size: int, seed: int) -> None:
    """Send ``size`` seeded bytes over TCP from ``src`` to ``dst``; assert they arrived whole."""
    port = 9977
    expected = hashlib.sha256(random.Random(seed).randbytes(size)).hexdigest()
    server = subprocess.Popen(in_ns(lab, dst, SERVE, str(port)), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "listening"
        client = subprocess.run(
            in_ns(lab, src, SEND, address(lab, dst), str(port), str(seed), str(size)),
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.split() == [str(size), expected]
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def slow_states(lab: Lab, viewer: str) -> dict[str, str]:
    """The viewer's node states, waiting long enough for an impaired node to answer."""
    try:
        return {n.name: n.state for n in lab.status_of(viewer, timeout=5).nodes}
    except RackError:
        return {}


def bridge_port_of(lab: Lab, node: str) -> str | None:
    veth = lab_state.require(lab.dir).node(node).veth
    assert veth
    info = json.loads(netns.ip("-j", "link", "show", "dev", veth))
    master = info[0].get("master")
    return str(master) if master else None


def links(lab_id: str) -> list[str]:
    return [
        line.split(":")[1].strip().split("@")[0]
        for line in netns.ip("-o", "link", "show").splitlines()
        if f"rcv{lab_id}" in line or f"rcbr-{lab_id}" in line
    ]


def forwarder_log(lab: Lab, node: str = "n2") -> str:
    return flaky.log_path(lab.dir, node).read_text()


@pytest.fixture(scope="module")
def lab2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if NETNS_REASON is not None:
        pytest.skip(f"the flaky link needs the netns lab: {NETNS_REASON}")
    lab = make_lab(tmp_path_factory.mktemp("flaky"), 2, "netns")
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def impaired(lab2: Lab) -> Iterator[Lab]:
    lab2.impair("n2", DELAY, JITTER, LOSS, seed=7)
    try:
        yield lab2
    finally:
        lab2.restore("n2")


@needs_root
def test_an_impaired_link_delays_loses_and_reorders_and_restore_undoes_it(lab2: Lab) -> None:
    st = lab_state.require(lab2.dir)
    assert ping(lab2, "n1", "n2", 20).average_ms < 20  # the plain bridge
    with flaky.flaky(lab2, "n2", delay=DELAY, jitter=JITTER, loss=LOSS, seed=3):
        assert bridge_port_of(lab2, "n2") is None  # the forwarder sits in between
        fa, fb = flaky.pair_names(st.node("n2").veth or "")
        assert {fa, fb} <= set(links(st.lab_id))
        seen = ping(lab2, "n1", "n2")
        print(
            f"\nimpaired: {len(seen.rtts)}/{seen.sent} answered, average "
            f"{seen.average_ms:.1f} ms, min {1000 * min(seen.rtts):.1f} ms, "
            f"max {1000 * max(seen.rtts):.1f} ms"
        )
        assert 0 < len(seen.rtts) < seen.sent  # some loss, not all
        assert seen.average_ms >= 150  # two crossings of 100 ms, less some jitter
        assert min(seen.rtts) >= 2 * (DELAY - JITTER) * 0.95  # none skips the delay
        assert seen.order != sorted(seen.order)  # jitter reorders, as netem does
        # the operator still reaches it; a fresh CURVE connection over 5 % loss may need a
        # few TCP retransmissions (1 s for a lost SYN), so it gets time (not a speed test)
        assert lab2.status_of("n2", timeout=15).nodes
    after = ping(lab2, "n1", "n2")
    print(f"restored: {len(after.rtts)}/{after.sent} answered, average {after.average_ms:.2f} ms")
    assert after.average_ms < 20
    assert len(after.rtts) == after.sent
    assert bridge_port_of(lab2, "n2") == st.bridge
    assert set(links(st.lab_id)) == {st.bridge, *(n.veth for n in st.nodes)}
    assert flaky.impaired(lab2.dir) == []
    assert "stopped" in forwarder_log(lab2)  # it exited on SIGTERM and said what it did


@needs_root
def test_the_host_sees_the_delay_whichever_node_holds_the_bridges_mac(lab2: Lab) -> None:
    """The bridge has its lowest port's MAC, so one of two nodes' veths shares it; that
    veth must not hand the node's frames for the bridge straight to the host."""
    st = lab_state.require(lab2.dir)
    assert st.bridge
    veths = [n.veth or "" for n in st.nodes]
    before = {dev: mac_of(dev) for dev in [st.bridge, *veths]}
    assert before[st.bridge] in {before[v] for v in veths}  # the premise
    for node in st.nodes:
        with flaky.flaky(lab2, node.name, delay=DELAY, jitter=JITTER, seed=11):
            seen = host_ping(node.record.address)
        assert len(seen.rtts) == seen.sent  # no loss asked for
        assert seen.average_ms >= 150, (node.name, seen.average_ms)  # delayed both ways
    assert {dev: mac_of(dev) for dev in before} == before  # every MAC back as it was


@needs_root
def test_tcp_crosses_the_flaky_link_intact_both_ways(impaired: Lab) -> None:
    transfer(impaired, "n1", "n2", 2 * 1024 * 1024, seed=1)  # into the impaired node
    transfer(impaired, "n2", "n1", 1024 * 1024, seed=2)  # out of it: its eth0 segments


@needs_root
def test_ten_megabytes_cross_as_whole_frames_both_ways(lab2: Lab) -> None:
    """Offloads off: the forwarder sees wire-sized frames with checksums, so none is
    refused (EMSGSIZE) and none arrives with an unfilled checksum (the transfer would
    stall). Little delay and no loss, so 10 MB take seconds, not minutes."""
    with flaky.flaky(lab2, "n2", delay=0.005, jitter=0.002, seed=5):
        transfer(lab2, "n1", "n2", 10_000_000, seed=3)
        transfer(lab2, "n2", "n1", 10_000_000, seed=4)
    last = forwarder_log(lab2).strip().splitlines()[-1]
    print(f"\n{last}")
    assert "stopped;" in last
    assert last.count(" 0 failed to send") == 2, last


@needs_root
def test_partition_still_cuts_an_impaired_node_and_heal_restores(impaired: Lab) -> None:
    """The cut is the node's own veth, which the forwarder reads: nothing gets around it.
    (Two nodes have one monitor and no majority to vote n2 down, so n1 only suspects.)"""
    impaired.partition("n2")
    try:
        assert ping(impaired, "n1", "n2", 10, 0.1).rtts == []
        with pytest.raises(RpcTimeout):
            impaired.status_of("n2", timeout=0.5)  # from the operator's side too
        wait_until(lambda: states(impaired, "n1")["n2"] != "up", 20, "n1 stops calling n2 up")
    finally:
        impaired.partition("n2", heal=True)
    wait_until(lambda: states(impaired, "n1")["n2"] == "up", 30, "n1 shows n2 up again")
    assert ping(impaired, "n1", "n2", 20, 0.05).rtts  # through the forwarder again


@needs_root
def test_kill_and_boot_work_while_impaired(impaired: Lab) -> None:
    ns = lab_state.require(impaired.dir).node("n2").netns
    assert ns
    impaired.kill("n2")
    assert netns.pids(ns) == []
    assert ping(impaired, "n1", "n2", 10, 0.1).rtts == []  # its link is down
    wait_until(lambda: states(impaired, "n1")["n2"] != "up", 20, "n1 stops calling n2 up")
    # not boot()'s own wait: it asks each node with a 0.5 s timeout, and a fresh
    # connection to an impaired node (TCP and CURVE handshakes) takes several round trips
    impaired.boot("n2", wait=False)
    both_up = {"n1": "up", "n2": "up"}
    wait_until(
        lambda: slow_states(impaired, "n1") == both_up == slow_states(impaired, "n2"),
        60,
        "both nodes show both up",
    )


@needs_root
def test_impair_refuses_a_second_impairment_and_bad_values(impaired: Lab) -> None:
    with pytest.raises(LabError, match="already impaired"):
        impaired.impair("n2", DELAY, JITTER, LOSS)
    with pytest.raises(LabError, match="probability"):
        impaired.impair("n1", 0.1, 0.0, 1.5)
    with pytest.raises(LabError, match="no node"):
        impaired.impair("n9", 0.1, 0.0, 0.0)
    assert flaky.impaired(impaired.dir) == ["n2"]


@needs_root
def test_down_undoes_an_impairment_it_finds(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, 2, "netns")
    try:
        st = lab_state.require(lab.dir)
        lab.impair("n1", DELAY, JITTER, LOSS)
        record = json.loads(flaky.record_path(lab.dir, "n1").read_bytes())
        pid = record["pid"]
        assert Path(f"/proc/{pid}").exists()
    finally:
        lab.down()
    assert not Path(f"/proc/{pid}").exists()
    assert links(st.lab_id) == []
    assert flaky.impaired(lab.dir) == []


def test_impair_needs_netns_mode(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    node = LabNode(record=NodeRecord(name="n1", address="127.0.0.1"))
    lab_state.save(lab.dir, LabState(lab_id="abcd", mode="loopback", nodes=[node]))
    with pytest.raises(LabError, match="needs netns mode"):
        lab.impair("n1", DELAY, JITTER, LOSS)
    lab.restore("n1")  # nothing to restore is fine
