"""Heartbeats attributed by connection, on real agents: an enrolled node that forges.

n5's power is pulled, and the test takes its place: it binds a PUB socket on n5's
address and port with n5's own CURVE keypair, so every lab agent's subscription to n5
(pinned to n5's key) reconnects to it. Whatever arrives there was sent by the holder of
n5's key, so it counts as n5's: a heartbeat naming n5 is taken, but one naming n2 and a
map (n5 is no monitor) are refused, however new they claim to be.

A node that took heartbeats from a shared SUB without checking the connection would
let the forged n2 heartbeat replace n2's incarnation (and then drop n2's real ones as
from a previous life), and would take the forged map's epoch: both are asserted against.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import msgspec
import pytest
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from agent.clustermap import ClusterMap, encode_map
from agent.errors import RackError
from agent.keys import Keypair, load_allowlist, load_keypair
from agent.lab import Lab, state
from agent.node.security import make_curve_server, start_authenticator
from agent.record import NodeRecord
from agent.wire import MAP_TOPIC, Heartbeat, MapUpdate, NodeStatus, encode, heartbeat_topic
from tests.helpers import states, wait_until

pytestmark = pytest.mark.integration
NODES = ["n1", "n2", "n3", "n4", "n5"]
RUNNING = ["n1", "n2", "n3", "n4"]
FORGED_INCARNATION = 12345
HUGE_SEQ = 10**15
FORGED_EPOCH = 10**9
CONTROL_INCARNATION = 0x5EED5
"""The incarnation the impostor gives n5 itself: seen in a node's status only if that
node took a heartbeat from the impostor's socket (n5 never had it)."""
SAMPLE_S = 3.0
"""How long the forged heartbeat keeps coming while every node's view of n2 is sampled."""

# The refusal lines, as agent/node/node.py (_dispatch: "refused a %s from %s: %s") and
# agent/core/senders.py (refusal) format them.
HEARTBEAT_REFUSED = "refused a Heartbeat from n5: node n5 may not send Heartbeat that speaks for n2"
MAP_REFUSED = "refused a MapUpdate from n5: node n5 may not send MapUpdate: monitors only"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A fresh 5-node loopback lab of this module's own (n1-n3 monitors)."""
    lab = Lab(tmp_path_factory.mktemp("attribution") / "lab-loopback")
    lab.up(5, "loopback", timeout=60.0)
    try:
        yield lab
    finally:
        lab.down()


def row(lab: Lab, viewer: str, name: str, timeout: float = 3.0) -> NodeStatus:
    return next(n for n in lab.status_of(viewer, timeout=timeout).nodes if n.name == name)


def agent_log(lab: Lab, name: str) -> str:
    return (lab.node_dir(name) / "agent.log").read_text(encoding="utf-8", errors="replace")


class Impostor:
    """A PUB socket bound where n5's was, with n5's keypair, publishing from its own thread.

    The ZAP handler (``start_authenticator``) runs on an asyncio loop, so the socket lives
    on a loop in a thread of its own while the test polls the agents synchronously.
    Every ``INTERVAL_S`` it publishes the current set of messages (``publish`` replaces it),
    each heartbeat with its seq moved on by one per round.
    """

    INTERVAL_S = 0.05

    def __init__(self, lab: Lab, keypair: Keypair, record: NodeRecord) -> None:
        self.allowlist = load_allowlist(lab.dir / "keys" / "allowlist.toml")
        self.keypair = keypair
        self.endpoint = record.pub_endpoint
        self._messages: list[tuple[bytes, Heartbeat | MapUpdate, tuple[bytes, ...]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.handshakes = 0
        """CURVE handshakes that succeeded on the socket (the agents' subscriptions)."""
        self.rounds = 0
        self._thread = threading.Thread(target=self._main, name="impostor-n5", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the impostor's socket did not come up")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the impostor's thread did not stop"

    def publish(self, *messages: tuple[bytes, Heartbeat | MapUpdate, tuple[bytes, ...]]) -> None:
        with self._lock:
            self._messages = list(messages)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        ctx = zmq.asyncio.Context()
        auth = None
        sock = monitor = watcher = None
        try:
            auth = start_authenticator(ctx, lambda: self.allowlist)
            sock = ctx.socket(zmq.PUB)
            make_curve_server(sock, self.keypair)
            monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            sock.bind(self.endpoint)
            watcher = asyncio.create_task(self._watch(monitor))
            self._ready.set()
            while not self._stop.is_set():
                with self._lock:
                    messages = list(self._messages)
                for topic, msg, payload in messages:
                    fresh = (  # a heartbeat is a fresh sign of life every round
                        msgspec.structs.replace(msg, seq=msg.seq + self.rounds)
                        if isinstance(msg, Heartbeat)
                        else msg
                    )
                    await sock.send_multipart([topic, *encode(fresh, payload)])
                self.rounds += 1
                await asyncio.sleep(self.INTERVAL_S)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            if watcher is not None:
                watcher.cancel()
            if sock is not None:
                sock.disable_monitor()
                sock.close(linger=0)
            if monitor is not None:
                monitor.close(linger=0)
            if auth is not None:
                auth.stop()
            ctx.destroy(linger=0)

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        while True:
            event = parse_monitor_message(await monitor.recv_multipart())
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.handshakes += 1


class Scene:
    """The lab with n5 dead, its impostor up, and what was true before any forgery."""

    def __init__(self, lab: Lab, impostor: Impostor, n2: NodeRecord, n5: NodeRecord) -> None:
        self.lab = lab
        self.impostor = impostor
        self.cluster = impostor.allowlist.cluster
        self.n2 = n2
        self.n2_incarnation = row(lab, "n2", "n2").incarnation
        self.n5 = n5

    def control(self, seq: int = 1) -> tuple[bytes, Heartbeat, tuple[bytes, ...]]:
        """n5 speaking for itself with a new incarnation: the one thing that may count."""
        beat = Heartbeat(
            cluster=self.cluster, node=self.n5, incarnation=CONTROL_INCARNATION, seq=seq
        )
        return heartbeat_topic("n5"), beat, ()

    def delivered_to(self, viewer: str) -> bool:
        """Whether ``viewer`` takes what the impostor publishes (its control heartbeat)."""
        try:
            return row(self.lab, viewer, "n5", timeout=1.0).incarnation == CONTROL_INCARNATION
        except RackError:
            return False

    def wait_delivered(self) -> None:
        wait_until(
            lambda: all(self.delivered_to(v) for v in RUNNING),
            30,
            "every running agent's subscription to n5 reaches the impostor and takes its own "
            f"heartbeat (handshakes so far: {self.impostor.handshakes})",
        )


@pytest.fixture(scope="module")
def scene(lab: Lab) -> Iterator[Scene]:
    n2 = row(lab, "n2", "n2").as_record()
    n5 = row(lab, "n5", "n5").as_record()
    real_n5_incarnation = row(lab, "n1", "n5").incarnation
    assert real_n5_incarnation not in (None, CONTROL_INCARNATION)
    assert n5.public_key == lab_key(lab, "n5")
    # Pull n5's power; the survivors vote it down.
    lab.kill("n5")
    wait_until(
        lambda: all(states(lab, v)["n5"] == "down" for v in RUNNING),
        30,
        "the vote marks n5 down in every survivor's map",
    )
    record = state.require(lab.dir).node("n5").record
    assert (record.address, record.pub_port) == (n5.address, n5.pub_port)
    keypair = load_keypair(lab.dir / "keys" / "secret" / "n5.key")
    assert keypair.public == n5.public_key
    impostor = Impostor(lab, keypair, record)
    impostor.start()
    try:
        yield Scene(lab, impostor, n2, n5)
    finally:
        impostor.stop()


def lab_key(lab: Lab, name: str) -> str | None:
    return load_allowlist(lab.dir / "keys" / "allowlist.toml").node_key(name)


def test_n5s_own_heartbeat_from_its_key_is_taken_by_every_node(scene: Scene) -> None:
    """The positive control: the connection is n5's, and so is a heartbeat naming n5."""
    scene.impostor.publish(scene.control())
    scene.wait_delivered()
    assert scene.impostor.handshakes >= len(RUNNING)
    for viewer in RUNNING:
        seen = row(scene.lab, viewer, "n5")
        assert seen.incarnation == CONTROL_INCARNATION
        assert seen.last_heartbeat_age_s is not None and seen.last_heartbeat_age_s < 5.0
        assert (seen.address, seen.pub_port) == (scene.n5.address, scene.n5.pub_port)


def test_a_heartbeat_n5_forges_for_n2_is_refused_by_every_node(scene: Scene) -> None:
    forged = Heartbeat(
        cluster=scene.cluster,
        node=scene.n2,
        incarnation=FORGED_INCARNATION,
        seq=HUGE_SEQ,
        epoch=0,
    )
    assert forged.node.public_key == lab_key(scene.lab, "n2")
    assert scene.n2_incarnation not in (None, FORGED_INCARNATION)
    scene.impostor.publish(scene.control(), (heartbeat_topic("n2"), forged, ()))
    scene.wait_delivered()  # the forgery travels on the same connections as the control
    # While the forgery keeps coming (20 a second, to n2's 5), n2 stays itself in every
    # view, every time we look: taken even once, it would show incarnation 12345, and
    # n2's real heartbeats would then be dropped as from a previous life.
    samples = 0
    deadline = time.monotonic() + SAMPLE_S
    while time.monotonic() < deadline:
        for viewer in RUNNING:
            seen = row(scene.lab, viewer, "n2")
            assert seen.incarnation == scene.n2_incarnation, (viewer, seen)
            assert seen.state == "up", (viewer, seen)
            samples += 1
        time.sleep(0.05)
    assert samples >= 4 * len(RUNNING)
    assert all(scene.delivered_to(v) for v in RUNNING)  # still delivered all along
    # and every agent said why it refused it
    wait_until(
        lambda: all(HEARTBEAT_REFUSED in agent_log(scene.lab, v) for v in RUNNING),
        30,
        f"every running agent's log says {HEARTBEAT_REFUSED!r}",
    )


def test_a_map_n5_publishes_is_refused_by_every_node(scene: Scene) -> None:
    cmap = ClusterMap(cluster=scene.cluster, epoch=FORGED_EPOCH)
    update = MapUpdate(cluster=scene.cluster, epoch=FORGED_EPOCH, leader="n5", term=10**6)
    scene.impostor.publish(scene.control(), (MAP_TOPIC, update, (encode_map(cmap),)))
    scene.wait_delivered()
    rounds = scene.impostor.rounds
    wait_until(
        lambda: scene.impostor.rounds >= rounds + 20, 30, "the forged map went out 20 more times"
    )
    # Taken once, the epoch would stay at 10**9 (maps only move forward), and a node
    # without a monitor of its own would name n5 as leader at term 10**6.
    deadline = time.monotonic() + SAMPLE_S
    while time.monotonic() < deadline:
        for viewer in RUNNING:
            status = scene.lab.status_of(viewer, timeout=3.0)
            assert status.epoch < 10**6, (viewer, status.epoch)
            assert status.quorum is not None
            assert status.quorum.leader != "n5" and status.quorum.term < 10**6, (viewer, status)
        time.sleep(0.05)
    # The node's refusal log is rate-limited per sender (one line per 10 s for n5), so
    # after the heartbeat refusal this line can take up to 10 s more to appear.
    wait_until(
        lambda: all(MAP_REFUSED in agent_log(scene.lab, v) for v in RUNNING),
        40,
        f"every running agent's log says {MAP_REFUSED!r}",
    )
