from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.record import NodeRecord
from agent.wire import (
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_FRAMES,
    PROTOCOL_TAG,
    DiskSummary,
    ErrorReply,
    FrameTooLarge,
    Heartbeat,
    MalformedMessage,
    StatusRequest,
    UnknownProtocol,
    decode,
    encode,
)

names = st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True)
u63 = st.integers(min_value=0, max_value=2**63 - 1)

records = st.builds(
    NodeRecord,
    name=names,
    address=st.ip_addresses(v=4).map(str),
    rpc_port=st.integers(1, 65535),
    pub_port=st.integers(1, 65535),
    public_key=st.text(alphabet="abcdefXYZ0123456789", min_size=40, max_size=40),
    roles=st.lists(st.sampled_from(["mon", "osd", "compute", "gateway"]), max_size=4).map(tuple),
)
heartbeats = st.builds(
    Heartbeat,
    cluster=names,
    node=records,
    incarnation=u63,
    seq=u63,
    epoch=u63,
    uptime_s=st.floats(0, 1e9),
    disks=st.lists(
        st.builds(
            DiskSummary,
            path=st.text(max_size=30),
            total_bytes=u63,
            free_bytes=u63,
            ok=st.booleans(),
        ),
        max_size=4,
    ).map(tuple),
)
messages = st.one_of(
    heartbeats,
    st.builds(StatusRequest, rid=u63, deadline_ms=st.integers(0, 10**6)),
    st.builds(
        ErrorReply, rid=u63, code=names, message=st.text(max_size=100), retryable=st.booleans()
    ),
)


@given(messages, st.lists(st.binary(max_size=64), max_size=4).map(tuple))
def test_round_trip(
    msg: Heartbeat | StatusRequest | ErrorReply, payload: tuple[bytes, ...]
) -> None:
    frames = encode(msg, payload)
    assert frames[0] == PROTOCOL_TAG
    assert frames[2:] == list(payload)  # bulk bytes stay in their own frames
    back, back_payload = decode(frames)
    assert back == msg and type(back) is type(msg)
    assert back_payload == payload


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=200), max_size=5))
def test_random_frames_never_escape_as_other_errors(frames: list[bytes]) -> None:
    with contextlib.suppress(MalformedMessage, UnknownProtocol, FrameTooLarge):
        decode(frames)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_header_after_good_tag_is_malformed_or_valid(header: bytes) -> None:
    try:
        msg, _ = decode([PROTOCOL_TAG, header])
    except MalformedMessage:
        return
    assert type(msg).__name__ in {"Heartbeat", "StatusRequest", "StatusReply", "ErrorReply"}


def test_specific_rejections() -> None:
    with pytest.raises(MalformedMessage, match="tag and a header"):
        decode([PROTOCOL_TAG])
    with pytest.raises(UnknownProtocol):
        decode([b"HTTP/1.1", b"x"])
    with pytest.raises(MalformedMessage):
        decode([PROTOCOL_TAG, msgspec.msgpack.encode({"type": "launch_missiles"})])
    with pytest.raises(MalformedMessage):
        decode([PROTOCOL_TAG, msgspec.msgpack.encode({"type": "status_request", "rid": "one"})])
    with pytest.raises(FrameTooLarge):
        decode([PROTOCOL_TAG, b"\x00" * (MAX_HEADER_BYTES + 1)])
    with pytest.raises(FrameTooLarge):
        decode([PROTOCOL_TAG, encode(StatusRequest(rid=1))[1], *([b""] * (MAX_PAYLOAD_FRAMES + 1))])


def test_unknown_fields_are_ignored_and_new_fields_default() -> None:
    """Forward compatibility: a newer peer's extra field must not break an older one."""
    header = msgspec.msgpack.encode(
        {
            "type": "heartbeat",
            "cluster": "c",
            "node": {"name": "n1", "address": "10.0.0.1", "data_port": 7102},
            "incarnation": 1,
            "seq": 2,
            "from_the_future": [1, 2],
        }
    )
    msg, _ = decode([PROTOCOL_TAG, header])
    assert isinstance(msg, Heartbeat)
    assert (msg.node.name, msg.seq, msg.epoch, msg.node.roles) == ("n1", 2, 0, ())
    assert msg.node.rpc_port == 7100  # a default, as the record declares
