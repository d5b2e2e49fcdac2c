"""Frames: the one place that knows how messages become bytes and back.

A message on the wire is a list of frames::

    [b"RC2", header, *payload]

``b"RC2"`` is the protocol tag (a major change gets a new tag: RC1 carried the node's
endpoints as loose fields, RC2 carries a node record), ``header`` is the message encoded
as msgpack (a tagged union: the ``type`` field names the struct), and bulk bytes travel
as their own payload frames, never copied into msgpack. On PUB sockets the topic frame
(``hb.<node>`` or ``map``) comes first, because ZeroMQ filters on frame 0.

Decoding never trusts the peer: every frame has a size limit, the tag and the header
are checked, and anything wrong raises a :class:`~agent.errors.WireError` subclass that
the caller answers or logs. New fields get defaults and unknown fields are ignored, so
nodes of neighbouring versions understand each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias

import msgspec

from agent.errors import WireError
from agent.wire.data import (
    MetaGet,
    MetaGetReply,
    MetaList,
    MetaListReply,
    MetaPut,
    MetaPutReply,
    ShardDelete,
    ShardDeleteReply,
    ShardGet,
    ShardGetReply,
    ShardPut,
    ShardPutReply,
)
from agent.wire.errors import ErrorReply
from agent.wire.maps import MapReply, MapRequest, MapUpdate
from agent.wire.membership import HealthReport, Heartbeat
from agent.wire.monitor import ProposeReply, ProposeRequest, RaftPacket
from agent.wire.status import StatusReply, StatusRequest
from agent.wire.supervisor import (
    LeaseGrant,
    LeaseRelease,
    LeaseReleased,
    LeaseRenew,
    LogReply,
    LogRequest,
)

PROTOCOL_TAG: Final = b"RC2"
DATA_TAG: Final = b"RD1"
"""The data plane's tag: its messages are refused on the control socket and vice versa."""
MAX_HEADER_BYTES: Final = 64 * 1024
MAX_PAYLOAD_FRAMES: Final = 256
MAX_PAYLOAD_BYTES: Final = 64 * 1024 * 1024
"""Largest payload an agent accepts, all frames together (ZMQ_MAXMSGSIZE is this plus
the header limit)."""


class UnknownProtocol(WireError):
    """The first frame is not a protocol tag we speak."""


class MalformedMessage(WireError):
    """The header does not decode to a known message type with valid fields."""


class FrameTooLarge(WireError):
    """A frame or the whole message is over its size limit."""


Message = (
    Heartbeat
    | HealthReport
    | StatusRequest
    | StatusReply
    | ErrorReply
    | RaftPacket
    | MapRequest
    | MapReply
    | MapUpdate
    | ProposeRequest
    | ProposeReply
    | LeaseRenew
    | LeaseGrant
    | LeaseRelease
    | LeaseReleased
    | LogRequest
    | LogReply
)
"""Every message of the protocol; each service's module declares its own."""

DataMessage = (
    ShardPut
    | ShardPutReply
    | ShardGet
    | ShardGetReply
    | ShardDelete
    | ShardDeleteReply
    | MetaPut
    | MetaPutReply
    | MetaGet
    | MetaGetReply
    | MetaList
    | MetaListReply
    | ErrorReply
)
"""Every message of the data plane (docs/objects.md)."""

Payload = tuple[bytes, ...]
BytesLike: TypeAlias = bytes | bytearray | memoryview

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)
_data_decoder = msgspec.msgpack.Decoder(DataMessage)


def _header(msg: Message | DataMessage) -> bytes:
    header = _encoder.encode(msg)
    if len(header) > MAX_HEADER_BYTES:
        raise FrameTooLarge(
            f"a {type(msg).__name__} header of {len(header)} bytes is over the limit"
        )
    return header


def encode(msg: Message, payload: Payload = ()) -> list[bytes]:
    """Message (plus bulk payload frames) to frames."""
    return [PROTOCOL_TAG, _header(msg), *payload]


def decode(frames: list[bytes]) -> tuple[Message, Payload]:
    """Frames to (message, payload frames); raises a WireError subclass on anything odd."""
    header, payload = _split(frames, PROTOCOL_TAG)
    try:
        msg = _decoder.decode(header)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessage(f"the header does not decode: {exc}") from None
    return msg, tuple(bytes(p) for p in payload)


def encode_data(msg: DataMessage, payload: Sequence[BytesLike] = ()) -> list[BytesLike]:
    """A data-plane message to frames; payload buffers are passed on, not copied."""
    return [DATA_TAG, _header(msg), *payload]


def decode_data(
    frames: Sequence[BytesLike],
) -> tuple[DataMessage, tuple[memoryview, ...]]:
    """Data-plane frames to (message, payload views), without copying the payload."""
    header, payload = _split(frames, DATA_TAG)
    try:
        msg = _data_decoder.decode(header)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessage(f"the header does not decode: {exc}") from None
    return msg, tuple(memoryview(p) for p in payload)


def _split(frames: Sequence[BytesLike], tag: bytes) -> tuple[BytesLike, Sequence[BytesLike]]:
    if len(frames) < 2:
        raise MalformedMessage(f"a message needs a tag and a header, got {len(frames)} frame(s)")
    first, header, *payload = frames
    if bytes(first[:16]) != tag:
        raise UnknownProtocol(f"unknown protocol tag {bytes(first[:16])!r}")
    if len(header) > MAX_HEADER_BYTES:
        raise FrameTooLarge(f"a header of {len(header)} bytes is over the {MAX_HEADER_BYTES} limit")
    if len(payload) > MAX_PAYLOAD_FRAMES:
        raise FrameTooLarge(
            f"{len(payload)} payload frames are over the {MAX_PAYLOAD_FRAMES} limit"
        )
    if sum(len(p) for p in payload) > MAX_PAYLOAD_BYTES:
        raise FrameTooLarge("the payload is over the message size limit")
    return header, payload
