"""The node's inbound path: a real Node over a recording transport, no sockets.

Frames go in through ``on_request`` and ``on_published`` exactly as the ZeroMQ transport
hands them over (with the key of the connection, or the name of the peer whose pinned
subscription they came on); replies are read back, decoded, from what the node asked
the transport to send. The node's own loops (heartbeats, detector, reports) run as in
production and only publish and send into the recording transport.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import pytest

from agent.clustermap import ClusterMap, encode_map
from agent.config import KeysConfig, NodeConfig, TimingConfig
from agent.core.failure import PeerState
from agent.core.vote import VoteTally, report_ttl
from agent.enrolment import Allowlist, Enrolled
from agent.node.clock import SystemClock
from agent.node.env import NodeEnv
from agent.node.node import Node
from agent.node.transport import Inbound, Spawn
from agent.raft import MemoryStorage
from agent.record import NodeRecord
from agent.wire import (
    MAP_TOPIC,
    PROTOCOL_TAG,
    ClusterStatus,
    DiskSummary,
    ErrorCode,
    ErrorReply,
    HealthReport,
    Heartbeat,
    MapReply,
    MapUpdate,
    Message,
    Payload,
    ProposeReply,
    ProposeRequest,
    RaftPacket,
    StatusReply,
    StatusRequest,
    decode,
    encode,
    heartbeat_topic,
)

T = TypeVar("T")
CLUSTER = "c-test"
NODES = ["n1", "n2", "n3", "n4"]
KEYS = {name: (name * 40)[:40] for name in [*NODES, "admin"]}
"""Distinct 40-character stand-ins for Z85 public keys."""
STRANGER = "s" * 40
ALLOWLIST = Allowlist(
    cluster=CLUSTER,
    keys=(
        *(Enrolled(name=n, kind="node", public=KEYS[n]) for n in NODES),
        Enrolled(name="admin", kind="client", public=KEYS["admin"]),
    ),
)
WAIT_S = 10.0
"""Generous bound on waiting for the node's event loop to do something."""


class RecordingTransport:
    """The Transport protocol, recording what the node asks of the network."""

    def __init__(self) -> None:
        self.inbound: Inbound | None = None
        self.spawn: Spawn | None = None
        self.replies: list[tuple[bytes, list[bytes]]] = []
        self.sent: list[tuple[str, list[bytes]]] = []
        self.published: list[list[bytes]] = []
        self.connected: list[NodeRecord] = []
        self.closed = False

    def start(self, inbound: Inbound, spawn: Spawn) -> None:
        self.inbound, self.spawn = inbound, spawn

    def connect(self, peer: NodeRecord) -> None:
        self.connected.append(peer)

    def send(self, peer: str, frames: list[bytes]) -> bool:
        self.sent.append((peer, frames))
        return True

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        self.replies.append((route, frames))

    def publish(self, frames: list[bytes]) -> None:
        self.published.append(frames)

    def close(self) -> None:
        self.closed = True


class RecordingTally(VoteTally):
    """The real tally, noting who reported what (the monitor's only input from reports)."""

    def __init__(self, timing: TimingConfig) -> None:
        super().__init__(report_ttl=report_ttl(timing.dead_after), out_after=timing.out_after)
        self.reports: list[tuple[str, frozenset[str]]] = []

    def report(
        self,
        reporter: str,
        dead: frozenset[str],
        alive: dict[str, int],
        now: float,
        *,
        incarnation: int = 0,
        seq: int = 0,
    ) -> bool:
        self.reports.append((reporter, dead))
        return super().report(reporter, dead, alive, now, incarnation=incarnation, seq=seq)


def tally(h: Harness) -> RecordingTally:
    monitor = h.node.services.monitor
    assert monitor is not None
    assert isinstance(monitor.tally, RecordingTally)
    return monitor.tally


class InlineExecutor:
    async def run(self, fn: Callable[[], T]) -> T:
        return fn()

    def close(self) -> None:
        return None


def disk_usage(path: str) -> DiskSummary:
    return DiskSummary(path=path, total_bytes=4 * 10**12, free_bytes=10**12)


def config(me: str, roles: tuple[str, ...], monitors: tuple[str, ...]) -> NodeConfig:
    return NodeConfig(
        cluster=CLUSTER,
        node=me,
        bind="127.0.0.1",
        roles=roles,  # type: ignore[arg-type]
        monitors=monitors,
        data_dir="/nonexistent/data",
        disks=("/srv/disk0",),
        keys=KeysConfig(secret="/nonexistent/secret.key", allowlist="/nonexistent/allow.toml"),
    )


OSD_N4 = config("n4", ("osd",), ("n1",))
"""The node under test in most tests: no monitor role; n1, another node, is the monitor."""
MON_N1 = config("n1", ("mon", "osd"), ("n1", "n2", "n3"))
"""A monitor whose two fellow monitors never answer (so Raft elects nobody)."""


def record(name: str) -> NodeRecord:
    port = 7000 + 2 * int(name[1:])
    return NodeRecord(
        name=name,
        address="127.0.0.1",
        rpc_port=port,
        pub_port=port + 1,
        public_key=KEYS[name],
        roles=("osd",),
    )


def heartbeat(name: str, *, incarnation: int = 7, seq: int = 1) -> Heartbeat:
    return Heartbeat(cluster=CLUSTER, node=record(name), incarnation=incarnation, seq=seq)


def map_update(epoch: int) -> tuple[MapUpdate, Payload]:
    update = MapUpdate(cluster=CLUSTER, epoch=epoch, leader="n1", term=1)
    return update, (encode_map(ClusterMap(cluster=CLUSTER, epoch=epoch)),)


def published(topic: bytes, msg: Message, payload: Payload = ()) -> list[bytes]:
    return [topic, *encode(msg, payload)]


class Harness:
    def __init__(self, node: Node, transport: RecordingTransport) -> None:
        self.node = node
        self.t = transport
        self._routes = 0

    def ask(self, key: str, frames: list[bytes]) -> list[Message]:
        """Hand a request in; the decoded replies the node gave that very route, at once."""
        self._routes += 1
        route = b"route-%d" % self._routes
        self.node.on_request(route, key, frames)
        return [decode(f)[0] for r, f in self.t.replies if r == route]

    def ask_msg(self, key: str, msg: Message, payload: Payload = ()) -> Message:
        replies = self.ask(key, encode(msg, payload))
        assert len(replies) == 1, replies
        return replies[0]

    def refusal(self, key: str, msg: Message, payload: Payload = ()) -> ErrorReply:
        reply = self.ask_msg(key, msg, payload)
        assert isinstance(reply, ErrorReply), reply
        return reply


@asynccontextmanager
async def running(conf: NodeConfig) -> Any:
    transport = RecordingTransport()
    env = NodeEnv(
        clock=SystemClock(),
        rng=random.Random(1),
        transport=transport,
        peer_source=None,
        raft_store=MemoryStorage,
        executor=InlineExecutor(),
        disk_usage=disk_usage,
        tally_factory=RecordingTally,
    )
    node = Node(conf, KEYS[conf.node], ALLOWLIST, env)
    task = asyncio.create_task(node.run(), name="node.run")
    try:
        await until(lambda: transport.inbound is node, "the node started its transport")
        yield Harness(node, transport)
    finally:
        node.stop()
        await asyncio.wait_for(task, WAIT_S)
    assert transport.closed


async def until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {WAIT_S} s waiting until {what}")
        await asyncio.sleep(0.01)


def run(conf: NodeConfig, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        async with running(conf) as h:
            await scenario(h)

    asyncio.run(main())


def on_node(conf: NodeConfig) -> Callable[[Callable[[Harness], Coroutine[Any, Any, None]]], Any]:
    """Turn ``async def scenario(h)`` into a test that runs it on a fresh node."""

    def wrap(scenario: Callable[[Harness], Coroutine[Any, Any, None]]) -> Callable[[], None]:
        def test_fn() -> None:
            run(conf, scenario)

        test_fn.__name__ = scenario.__name__
        test_fn.__doc__ = scenario.__doc__
        return test_fn

    return wrap


@contextmanager
def no_new(h: Harness) -> Iterator[None]:
    before = len(h.t.replies)
    yield
    assert h.t.replies[before:] == []


# ---- requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"junk"],
        [b"NOPE", b"x"],
        [PROTOCOL_TAG, b"\xc1\xff\x00"],
        [PROTOCOL_TAG, b"\x81\xa4type\xa9no-such-type"],
        [PROTOCOL_TAG, b"\x81\xa4type\xa9heartbeat"],  # a known type without its fields
    ],
    ids=["empty", "one-frame", "wrong-tag", "not-msgpack", "unknown-type", "missing-fields"],
)
def test_garbage_is_answered_malformed(frames: list[bytes]) -> None:
    async def scenario(h: Harness) -> None:
        for key in (KEYS["admin"], KEYS["n2"]):
            replies = h.ask(key, frames)
            assert len(replies) == 1, replies
            reply = replies[0]
            assert isinstance(reply, ErrorReply)
            assert (reply.code, reply.rid, reply.retryable) == (ErrorCode.MALFORMED, 0, False)

    run(OSD_N4, scenario)


@on_node(OSD_N4)
async def test_a_type_nobody_answers_is_unexpected_with_its_rid(h: Harness) -> None:
    status = ClusterStatus(cluster=CLUSTER, epoch=0, quorum=None, nodes=())
    for msg in (
        StatusReply(rid=41, status=status),
        ProposeReply(rid=42, epoch=3),
        MapReply(rid=43, epoch=3),
        ErrorReply(rid=44, code="busy", message="x"),
    ):
        reply = h.refusal(KEYS["admin"], msg)
        assert (reply.code, reply.rid) == (ErrorCode.UNEXPECTED, msg.rid)
        assert reply.message == f"this node does not answer {type(msg).__name__}"
    # a message without a rid is answered with rid 0
    for ridless in (RaftPacket(), HealthReport(reporter="n2")):
        reply = h.refusal(KEYS["n2"], ridless)
        assert (reply.code, reply.rid) == (ErrorCode.UNEXPECTED, 0), reply
    # a node without the mon role answers no monitor message, whoever sends it
    reply = h.refusal(KEYS["n1"], RaftPacket())
    assert reply.message == "this node does not answer RaftPacket"


@on_node(OSD_N4)
async def test_a_heartbeat_sent_as_a_request_is_refused(h: Harness) -> None:
    """Heartbeats count only on the subscription of their speaker, never as requests."""
    for key, hb in ((KEYS["admin"], heartbeat("n2")), (KEYS["n2"], heartbeat("n2"))):
        reply = h.refusal(key, hb)
        assert reply.code == ErrorCode.UNEXPECTED
        assert reply.message == "Heartbeat is taken only published on a subscription"
    assert "n2" not in h.node.services.membership.beats


@on_node(MON_N1)
async def test_monitor_messages_are_refused_to_clients_and_to_other_speakers(h: Harness) -> None:
    for msg in (RaftPacket(), HealthReport(reporter="admin"), HealthReport(reporter="n2")):
        reply = h.refusal(KEYS["admin"], msg)
        assert (reply.code, reply.rid) == (ErrorCode.NOT_ALLOWED, 0), reply
        assert reply.message.startswith(f"client admin may not send {type(msg).__name__}")
    reply = h.refusal(KEYS["n2"], HealthReport(reporter="n3", dead=("n1",)))
    assert reply.code == ErrorCode.NOT_ALLOWED
    assert reply.message == "node n2 may not send HealthReport that speaks for n3"
    reply = h.refusal(KEYS["n4"], RaftPacket(), (b"\x00",))
    assert reply.code == ErrorCode.NOT_ALLOWED
    assert reply.message == "node n4 may not send RaftPacket: monitors only"
    # the speaker itself and a fellow monitor are let through (fire and forget: no reply)
    with no_new(h):
        assert h.ask(KEYS["n2"], encode(HealthReport(reporter="n2", seq=1))) == []
        assert h.ask(KEYS["n3"], encode(RaftPacket(), (b"\xc1",))) == []
    await until(lambda: tally(h).reports != [], "the monitor tallied a report")
    reporters = {r for r, _ in tally(h).reports}
    assert "n2" in reporters and "n3" not in reporters and "admin" not in reporters
    assert ("n3", frozenset({"n1"})) not in tally(h).reports


@on_node(OSD_N4)
async def test_status_is_answered_with_the_rid_and_every_enrolled_node(h: Harness) -> None:
    reply = h.ask_msg(KEYS["admin"], StatusRequest(rid=9001))
    assert isinstance(reply, StatusReply)
    assert reply.rid == 9001
    status = reply.status
    assert (status.cluster, status.answered_by, status.epoch) == (CLUSTER, "n4", 0)
    assert [n.name for n in status.nodes] == NODES
    me = next(n for n in status.nodes if n.name == "n4")
    assert (me.state, me.public_key, me.osds) == ("up", KEYS["n4"], (disk_usage("/srv/disk0"),))
    assert status.quorum is not None and status.quorum.members == ("n1",)
    # a node asks too, and gets its own rid back
    reply = h.ask_msg(KEYS["n2"], StatusRequest(rid=7))
    assert isinstance(reply, StatusReply) and reply.rid == 7


@on_node(OSD_N4)
async def test_a_proposal_that_carries_no_command_is_a_bad_request(h: Harness) -> None:
    for payload, why in [
        ((b"\xc1not a command",), "the command does not decode: "),
        ((b"\x81\xa4kind\xa5nope",), "the command does not decode: "),
        ((), "a proposal carries exactly one command"),
        ((b"a", b"b"), "a proposal carries exactly one command"),
    ]:
        reply = h.refusal(KEYS["admin"], ProposeRequest(rid=55), payload)
        assert (reply.code, reply.rid, reply.retryable) == (ErrorCode.BAD_REQUEST, 55, False)
        assert reply.message.startswith(why), reply.message
    assert not any(isinstance(decode(f)[0], ProposeRequest) for _, f in h.t.sent)


@on_node(OSD_N4)
async def test_a_key_outside_the_allowlist_gets_no_reply(h: Harness) -> None:
    with no_new(h):
        assert h.ask(STRANGER, encode(StatusRequest(rid=1))) == []
        assert h.ask(STRANGER, encode(ProposeRequest(rid=2), (b"x",))) == []
        assert h.ask(STRANGER, encode(StatusReply(rid=3, status=_empty_status()))) == []
    # control: the same request from an enrolled key is answered, and is the only reply
    before = len(h.t.replies)
    assert isinstance(h.ask_msg(KEYS["admin"], StatusRequest(rid=1)), StatusReply)
    assert len(h.t.replies) == before + 1


def _empty_status() -> ClusterStatus:
    return ClusterStatus(cluster=CLUSTER, epoch=0, quorum=None, nodes=())


# ---- published -----------------------------------------------------------------------


@on_node(OSD_N4)
async def test_a_heartbeat_counts_only_on_the_subscription_of_the_node_it_names(
    h: Harness,
) -> None:
    membership = h.node.services.membership
    forged = heartbeat("n3", incarnation=12345, seq=10**9)
    h.node.on_published("n2", published(heartbeat_topic("n3"), forged))
    assert "n3" not in membership.beats
    assert membership.detector.state("n3") is None
    assert all(v.node != "n3" for v in membership.detector.views(0.0))
    # the same heartbeat heard on n3's own subscription is n3's: taken
    h.node.on_published("n3", published(heartbeat_topic("n3"), forged))
    assert membership.beats["n3"] == forged
    assert membership.detector.state("n3") is PeerState.ALIVE
    # and n2 speaking for itself on its own subscription is taken
    own = heartbeat("n2", incarnation=99, seq=3)
    h.node.on_published("n2", published(heartbeat_topic("n2"), own))
    assert membership.beats["n2"] == own
    assert membership.detector.state("n2") is PeerState.ALIVE
    assert {v.node: v.incarnation for v in membership.detector.views(0.0)} == {
        "n2": 99,
        "n3": 12345,
    }


@pytest.mark.parametrize("topic", [b"hb.n3", b"hb.n2x", b"hb.", MAP_TOPIC, b"", b"\xff" * 64])
def test_a_heartbeat_on_the_wrong_topic_is_dropped(topic: bytes) -> None:
    async def scenario(h: Harness) -> None:
        membership = h.node.services.membership
        h.node.on_published("n2", published(topic, heartbeat("n2")))
        assert "n2" not in membership.beats
        assert membership.detector.state("n2") is None
        # control: the very same heartbeat on its topic is taken
        h.node.on_published("n2", published(heartbeat_topic("n2"), heartbeat("n2")))
        assert "n2" in membership.beats

    run(OSD_N4, scenario)


@on_node(OSD_N4)
async def test_garbage_on_a_subscription_is_dropped_without_a_reply(h: Harness) -> None:
    with no_new(h):
        for frames in ([b"hb.n2"], [b"hb.n2", b"junk", b"x"], [b"map", PROTOCOL_TAG, b"\xc1"]):
            h.node.on_published("n2", frames)
        # a request type published on a topic is dropped too: no reply path exists
        h.node.on_published("n2", published(b"hb.n2", StatusRequest(rid=1)))
    assert h.node.services.membership.beats == {}


@on_node(OSD_N4)
async def test_a_map_is_taken_only_from_a_monitor(h: Harness) -> None:
    mapcache = h.node.services.mapcache
    update, payload = map_update(5)
    h.node.on_published("n2", published(MAP_TOPIC, update, payload))
    assert mapcache.epoch == 0 and mapcache.cmap is None
    assert mapcache.leader() is None  # not even the leader hint is taken from n2
    # a map published on a heartbeat topic, even by the monitor, is dropped
    h.node.on_published("n1", published(heartbeat_topic("n1"), update, payload))
    assert mapcache.epoch == 0
    # the monitor on the map topic: taken
    h.node.on_published("n1", published(MAP_TOPIC, update, payload))
    assert mapcache.epoch == 5
    assert mapcache.leader() == "n1"
    # and n2 cannot move it on afterwards
    later, later_payload = map_update(10**9)
    h.node.on_published("n2", published(MAP_TOPIC, later, later_payload))
    assert mapcache.epoch == 5
    reply = h.ask_msg(KEYS["admin"], StatusRequest(rid=1))
    assert isinstance(reply, StatusReply) and reply.status.epoch == 5


@pytest.mark.parametrize(
    ("peer", "frames", "line"),
    [
        (
            "n2",
            published(MAP_TOPIC, *map_update(5)),
            "refused a MapUpdate from n2: node n2 may not send MapUpdate: monitors only",
        ),
        (
            "n2",
            published(heartbeat_topic("n3"), heartbeat("n3")),
            "refused a Heartbeat from n2: node n2 may not send Heartbeat that speaks for n3",
        ),
        (
            "n2",
            published(b"hb.n3", heartbeat("n2")),
            "dropped a Heartbeat published by n2 on topic b'hb.n3'",
        ),
        ("n3", [b"hb.n3", b"junk"], "dropped a malformed message from n3: "),
    ],
    ids=["map-from-non-monitor", "heartbeat-for-another", "wrong-topic", "malformed"],
)
def test_a_dropped_publication_is_logged_naming_the_peer(
    caplog: pytest.LogCaptureFixture, peer: str, frames: list[bytes], line: str
) -> None:
    async def scenario(h: Harness) -> None:
        h.node.on_published(peer, frames)

    with caplog.at_level(logging.WARNING, logger="agent"):
        run(OSD_N4, scenario)
    assert line in caplog.text


@on_node(OSD_N4)
async def test_the_nodes_own_loops_only_talk_to_the_transport(h: Harness) -> None:
    """Sanity of the harness: the node runs its loops, publishing into the recording."""
    await until(lambda: len(h.t.published) >= 2, "the node published two heartbeats")
    topics = {frames[0] for frames in h.t.published}
    assert topics == {heartbeat_topic("n4")}
    beat = decode(h.t.published[-1][1:])[0]
    assert isinstance(beat, Heartbeat) and beat.node == h.node.me and beat.seq >= 2
    await until(lambda: any(p == "n1" for p, _ in h.t.sent), "a health report went to n1")
    report = decode(next(f for p, f in h.t.sent if p == "n1"))[0]
    assert isinstance(report, HealthReport) and report.reporter == "n4"
