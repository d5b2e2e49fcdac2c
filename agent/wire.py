"""The wire: typed messages and the one place that knows how they become frames.

A message on the wire is a list of frames::

    [b"RC1", header, *payload]

``b"RC1"`` is the protocol tag (a major change gets a new tag), ``header`` is the message
encoded as msgpack (a tagged union: the ``type`` field names the struct), and bulk bytes
such as shards travel as their own payload frames, never copied into msgpack. On PUB
sockets the topic frame ``hb.<node>`` comes first, because ZeroMQ filters on frame 0.

Decoding never trusts the peer: every frame has a size limit, the tag and the header
are checked, and anything wrong raises a :class:`WireError` subclass that the caller
answers or logs. New fields get defaults and unknown fields are ignored, so nodes of
neighbouring versions understand each other.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from agent.errors import WireError

PROTOCOL_TAG: Final = b"RC1"
MAX_HEADER_BYTES: Final = 64 * 1024
MAX_PAYLOAD_FRAMES: Final = 256
MAX_PAYLOAD_BYTES: Final = 64 * 1024 * 1024
"""Largest message an agent accepts, all payload frames together (also set as ZMQ_MAXMSGSIZE)."""


class UnknownProtocol(WireError):
    """The first frame is not a protocol tag we speak."""


class MalformedMessage(WireError):
    """The header does not decode to a known message type with valid fields."""


class FrameTooLarge(WireError):
    """A frame or the whole message is over its size limit."""


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of all messages: frozen, keyword-only, tagged by class name."""


# ---- heartbeats (PUB/SUB, topic hb.<node>) ---------------------------------------------


class DiskSummary(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    total_bytes: int
    free_bytes: int
    ok: bool = True


class ContainerSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    generation: int
    state: str


class Heartbeat(_Msg, frozen=True, kw_only=True, tag="heartbeat"):
    """Published every interval by every agent; see docs/heartbeats.md for viewers."""

    cluster: str
    node: str
    incarnation: int
    seq: int
    epoch: int = 0
    roles: tuple[str, ...] = ()
    address: str = ""
    rpc_port: int = 0
    pub_port: int = 0
    uptime_s: float = 0.0
    sent_at: float = 0.0
    disks: tuple[DiskSummary, ...] = ()
    containers: tuple[ContainerSummary, ...] = ()
    raft_role: str | None = None
    raft_term: int = 0
    leader: str | None = None
    """The monitor this node believes leads (monitors only; others learn it from them)."""
    version: str = ""


# ---- RPC (DEALER -> ROUTER) ------------------------------------------------------------


class StatusRequest(_Msg, frozen=True, kw_only=True, tag="status_request"):
    rid: int
    deadline_ms: int = 0


class NodeStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One node as the answering agent sees it (DESIGN §11 ``rack status --json``)."""

    name: str
    address: str | None
    state: str
    roles: tuple[str, ...]
    last_heartbeat_age_s: float | None
    osds: tuple[DiskSummary, ...] = ()
    rpc_port: int | None = None
    pub_port: int | None = None
    incarnation: int | None = None
    uptime_s: float | None = None
    in_map: bool = False
    """Whether the cluster map lists this node yet (False before monitors admit it)."""
    osd_ids: tuple[int, ...] = ()
    """The ids the cluster map gave this node's disks."""


class Quorum(msgspec.Struct, frozen=True, kw_only=True):
    leader: str | None
    term: int
    members: tuple[str, ...]


class ContainerStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    node: str | None
    address: str | None
    generation: int
    state: str


class ClusterStatus(msgspec.Struct, frozen=True, kw_only=True):
    cluster: str
    epoch: int
    quorum: Quorum | None
    nodes: tuple[NodeStatus, ...]
    pools: tuple[dict[str, Any], ...] = ()
    containers: tuple[ContainerStatus, ...] = ()
    answered_by: str = ""


class StatusReply(_Msg, frozen=True, kw_only=True, tag="status_reply"):
    rid: int
    status: ClusterStatus


class ErrorReply(_Msg, frozen=True, kw_only=True, tag="error"):
    """A typed refusal: ``code`` is stable for scripts, ``message`` is for people."""

    rid: int
    code: str
    message: str
    retryable: bool = False


# ---- monitors -------------------------------------------------------------------------


class RaftPacket(_Msg, frozen=True, kw_only=True, tag="raft"):
    """One Raft message between monitors (fire and forget); payload: the encoded message.

    The receiver checks that the CURVE key that sent it is the monitor ``src`` names.
    """


class HealthReport(_Msg, frozen=True, kw_only=True, tag="health_report"):
    """What a node's failure detector says of its peers, sent to the monitors for the vote."""

    reporter: str
    dead: tuple[str, ...] = ()
    alive: dict[str, int] = msgspec.field(default_factory=dict)
    """Peers heard recently, with the incarnation heard."""


class MapRequest(_Msg, frozen=True, kw_only=True, tag="map_request"):
    rid: int
    have_epoch: int = 0


class MapReply(_Msg, frozen=True, kw_only=True, tag="map_reply"):
    """The cluster map (payload frame: msgpack-encoded map), or ``epoch`` alone if not newer."""

    rid: int
    epoch: int


class MapUpdate(_Msg, frozen=True, kw_only=True, tag="map_update"):
    """Published by monitors on topic ``map`` after each new epoch; payload: the map."""

    cluster: str
    epoch: int
    leader: str | None = None
    term: int = 0


class ProposeRequest(_Msg, frozen=True, kw_only=True, tag="propose"):
    """Change the map; payload: one encoded cluster-map command. Any node forwards it."""

    rid: int
    deadline_ms: int = 3000
    hops: int = 0


class ProposeReply(_Msg, frozen=True, kw_only=True, tag="propose_reply"):
    rid: int
    epoch: int
    refused: str | None = None
    """Why the map refused the command (it was committed, but changed nothing)."""


Message = (
    Heartbeat
    | StatusRequest
    | StatusReply
    | ErrorReply
    | RaftPacket
    | HealthReport
    | MapRequest
    | MapReply
    | MapUpdate
    | ProposeRequest
    | ProposeReply
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(msg: Message, payload: tuple[bytes, ...] = ()) -> list[bytes]:
    """Message (plus bulk payload frames) to frames."""
    header = _encoder.encode(msg)
    if len(header) > MAX_HEADER_BYTES:
        raise FrameTooLarge(
            f"a {type(msg).__name__} header of {len(header)} bytes is over the limit"
        )
    return [PROTOCOL_TAG, header, *payload]


def decode(frames: list[bytes]) -> tuple[Message, tuple[bytes, ...]]:
    """Frames to (message, payload frames); raises a WireError subclass on anything odd."""
    if len(frames) < 2:
        raise MalformedMessage(f"a message needs a tag and a header, got {len(frames)} frame(s)")
    tag, header, *payload = frames
    if tag != PROTOCOL_TAG:
        raise UnknownProtocol(f"unknown protocol tag {bytes(tag[:16])!r}")
    if len(header) > MAX_HEADER_BYTES:
        raise FrameTooLarge(f"a header of {len(header)} bytes is over the {MAX_HEADER_BYTES} limit")
    if len(payload) > MAX_PAYLOAD_FRAMES:
        raise FrameTooLarge(
            f"{len(payload)} payload frames are over the {MAX_PAYLOAD_FRAMES} limit"
        )
    if sum(len(p) for p in payload) > MAX_PAYLOAD_BYTES:
        raise FrameTooLarge("the payload is over the message size limit")
    try:
        msg = _decoder.decode(header)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessage(f"the header does not decode: {exc}") from None
    return msg, tuple(bytes(p) for p in payload)


MAP_TOPIC: Final = b"map"


def heartbeat_topic(node: str) -> bytes:
    return f"hb.{node}".encode()


HEARTBEAT_PREFIX: Final = b"hb."
