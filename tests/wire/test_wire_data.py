"""Data-plane frames: their own tag, payloads passed as views, bad input refused."""

from __future__ import annotations

import msgspec
import pytest

from agent.objects.format import ShardHeader, ShardId, Version
from agent.wire import (
    DATA_TAG,
    PROTOCOL_TAG,
    FrameTooLarge,
    MalformedMessage,
    ShardPut,
    StatusRequest,
    UnknownProtocol,
    decode,
    decode_data,
    encode,
    encode_data,
)

HEADER = ShardHeader(
    id=ShardId(1, 7, "a/b c", Version(5, 6), 2, 4), k=3, m=2, plugin="rs", chunk_len=9, shard_len=3
)


def test_a_shard_put_round_trips_with_its_bytes_as_a_payload_view() -> None:
    shard = bytes(range(256)) * 10
    frames = encode_data(ShardPut(rid=9, osd=3, header=HEADER), (shard,))
    assert frames[0] == DATA_TAG
    assert frames[2] is shard  # passed on, not copied
    msg, payload = decode_data(frames)
    assert msg == ShardPut(rid=9, osd=3, header=HEADER)
    assert isinstance(payload[0], memoryview)
    assert bytes(payload[0]) == shard


def test_control_and_data_messages_are_refused_on_each_others_socket() -> None:
    with pytest.raises(UnknownProtocol):
        decode_data(encode(StatusRequest(rid=1)))
    with pytest.raises(UnknownProtocol):
        decode(encode_data(ShardPut(rid=1, osd=0, header=HEADER)))  # type: ignore[arg-type]
    assert PROTOCOL_TAG != DATA_TAG


def test_a_control_message_header_on_the_data_tag_is_malformed() -> None:
    header = msgspec.msgpack.encode(StatusRequest(rid=1))
    with pytest.raises(MalformedMessage):
        decode_data([DATA_TAG, header])


@pytest.mark.parametrize(
    "frames",
    [[DATA_TAG], [DATA_TAG, b"\xc1"], [DATA_TAG, b"\x80"], [DATA_TAG, b"{not msgpack"]],
)
def test_garbage_is_a_wire_error_never_a_crash(frames: list[bytes]) -> None:
    with pytest.raises(MalformedMessage):
        decode_data(frames)


def test_too_many_payload_frames_are_refused() -> None:
    frames = encode_data(ShardPut(rid=1, osd=0, header=HEADER), [b"x"] * 300)
    with pytest.raises(FrameTooLarge):
        decode_data(frames)
