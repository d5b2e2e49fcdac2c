"""The wire protocol: typed messages, one module per service, and the only frame codec.

``frames`` is the one module that knows bytes; ``errors`` holds the one set of error
codes; ``membership``, ``maps``, ``monitor`` and ``status`` declare the messages of the
service that answers them (docs/architecture.md lists who may send each).
"""

from agent.wire.base import Msg
from agent.wire.errors import ErrorCode, ErrorReply, error_reply, remote_error
from agent.wire.frames import (
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_FRAMES,
    PROTOCOL_TAG,
    FrameTooLarge,
    MalformedMessage,
    Message,
    Payload,
    UnknownProtocol,
    decode,
    encode,
)
from agent.wire.maps import MAP_TOPIC, MapReply, MapRequest, MapUpdate
from agent.wire.membership import (
    HEARTBEAT_PREFIX,
    ContainerSummary,
    DiskSummary,
    HealthReport,
    Heartbeat,
    heartbeat_topic,
)
from agent.wire.monitor import ProposeReply, ProposeRequest, RaftPacket
from agent.wire.status import (
    ClusterStatus,
    ContainerStatus,
    NodeStatus,
    Quorum,
    StatusReply,
    StatusRequest,
)

__all__ = [
    "HEARTBEAT_PREFIX",
    "MAP_TOPIC",
    "MAX_HEADER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_FRAMES",
    "PROTOCOL_TAG",
    "ClusterStatus",
    "ContainerStatus",
    "ContainerSummary",
    "DiskSummary",
    "ErrorCode",
    "ErrorReply",
    "FrameTooLarge",
    "HealthReport",
    "Heartbeat",
    "MalformedMessage",
    "MapReply",
    "MapRequest",
    "MapUpdate",
    "Message",
    "Msg",
    "NodeStatus",
    "Payload",
    "ProposeReply",
    "ProposeRequest",
    "Quorum",
    "RaftPacket",
    "StatusReply",
    "StatusRequest",
    "UnknownProtocol",
    "decode",
    "encode",
    "error_reply",
    "heartbeat_topic",
    "remote_error",
]
