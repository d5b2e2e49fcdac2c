"""Security with real agents: only enrolled keys get in, garbage never crashes anyone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import zmq

from agent.client import Client
from agent.config import ClientConfig, KeysConfig, dump_toml, load_client_config
from agent.enrolment import Allowlist
from agent.errors import RpcTimeout
from agent.keys import create_keyring, load_allowlist, load_keypair, write_allowlist
from agent.lab import Lab
from agent.lab.rack import _free_port_block
from agent.node.security import make_curve_client
from agent.record import NodeRecord
from agent.wire import PROTOCOL_TAG, ErrorReply, decode
from tests.helpers import wait_until

pytestmark = pytest.mark.integration
NODES = ["n1", "n2", "n3", "n4", "n5"]


def incarnations(lab: Lab) -> dict[str, int | None]:
    return {n.name: n.incarnation for n in lab.status_of("n1").nodes}


def test_client_with_an_unenrolled_key_gets_no_answer(loopback_lab: Lab, tmp_path: Path) -> None:
    create_keyring(tmp_path, [], ["admin"], cluster="stranger")
    conf = load_client_config(loopback_lab.client_conf)
    stranger = ClientConfig(
        cluster=conf.cluster,
        keys=KeysConfig(
            secret=str(tmp_path / "secret" / "admin.key"), allowlist=conf.keys.allowlist
        ),
        nodes=conf.nodes,
        timeout=1.5,
    )
    with Client(stranger) as client, pytest.raises(RpcTimeout):
        client.status()
    with Client(conf) as client:  # the enrolled admin still gets in
        assert len(client.status().nodes) == 5


def test_garbage_on_rpc_and_pub_ports_crashes_nobody(loopback_lab: Lab) -> None:
    before = incarnations(loopback_lab)
    conf = load_client_config(loopback_lab.client_conf)
    # 1. Raw TCP garbage, as a port scanner or a confused HTTP client would send.
    for node in conf.nodes:
        for port in (node.rpc_port, node.pub_port):
            with socket.create_connection((node.address, port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(4096))
    # 2. Well-authenticated but malformed frames from an enrolled client.
    me = load_keypair(conf.keys.secret)
    allowlist = load_allowlist(conf.keys.allowlist)
    ctx = zmq.Context()
    try:
        for node in conf.nodes:
            sock = ctx.socket(zmq.DEALER)
            make_curve_client(sock, me, allowlist.by_name(node.name).public)  # type: ignore[union-attr]
            sock.connect(f"tcp://{node.address}:{node.rpc_port}")
            bad = [
                [PROTOCOL_TAG, b"\xc1\xff\x00"],
                [b"NOPE", b"x"],
                [PROTOCOL_TAG],
                [PROTOCOL_TAG, b"\x81\xa4type\xa9heartbeat"],
            ]
            for frames in bad:
                sock.send_multipart(frames)
                assert sock.poll(3000), f"{node.name} did not answer a malformed request"
                reply, _ = decode(sock.recv_multipart())
                assert isinstance(reply, ErrorReply) and reply.code in {"malformed", "unexpected"}
            sock.close(linger=0)
    finally:
        ctx.destroy(linger=0)
    # Everyone still answers, with the same incarnation: nobody crashed or restarted.
    assert incarnations(loopback_lab) == before
    for viewer in NODES:
        assert {n.name: n.state for n in loopback_lab.status_of(viewer).nodes} == dict.fromkeys(
            NODES, "up"
        )


def test_unenrolled_agent_announces_itself_and_is_never_admitted(
    loopback_lab: Lab, tmp_path: Path
) -> None:
    lab_allow = load_allowlist(load_client_config(loopback_lab.client_conf).keys.allowlist)
    rogue_dir = tmp_path / "rogue"
    own = create_keyring(rogue_dir / "keys", ["rogue"], ["radmin"], cluster=lab_allow.cluster)
    # The rogue trusts the lab's nodes, so it would happily subscribe to them...
    write_allowlist(
        rogue_dir / "keys", Allowlist(cluster=own.cluster, keys=(*own.keys, *lab_allow.nodes()))
    )
    rpc = _free_port_block(2)
    (rogue_dir / "agent.toml").write_text(
        dump_toml(
            {
                "cluster": own.cluster,
                "node": "rogue",
                "bind": "127.0.0.1",
                "rpc_port": rpc,
                "pub_port": rpc + 1,
                "data_dir": "data",
                "keys": {"secret": "keys/secret/rogue.key", "allowlist": "keys/allowlist.toml"},
            }
        )
    )
    log = (rogue_dir / "agent.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.node.main", "--conf", str(rogue_dir / "agent.toml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        lab_logs = [loopback_lab.node_dir(n) / "agent.log" for n in NODES]

        def refused_by_all() -> bool:
            assert proc.poll() is None, (rogue_dir / "agent.log").read_text()
            return all("'rogue' is not enrolled" in p.read_text() for p in lab_logs)

        wait_until(
            refused_by_all,
            20,
            "every lab node has seen and refused the rogue announcement",
        )
        # ...but the lab's ZAP handlers refuse its key, so it never hears a heartbeat.
        rogue_client = ClientConfig(
            cluster=own.cluster,
            keys=KeysConfig(
                secret=str(rogue_dir / "keys/secret/radmin.key"),
                allowlist=str(rogue_dir / "keys/allowlist.toml"),
            ),
            nodes=(NodeRecord(name="rogue", address="127.0.0.1", rpc_port=rpc, pub_port=rpc + 1),),
        )
        with Client(rogue_client) as client:
            view = {n.name: (n.state, n.last_heartbeat_age_s) for n in client.status().nodes}
        assert view["rogue"][0] == "up"
        assert all(view[n] == ("down", None) for n in NODES), view
        assert "refused a connection from unenrolled key" in "".join(
            p.read_text() for p in lab_logs
        )
        # And the lab's own view is unchanged.
        assert sorted(n.name for n in loopback_lab.status_of("n1").nodes) == NODES
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()
