"""The demo's synthetic video: what is made parses back, frames name their index, and
anything else is refused with a sentence."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import RackError
from agent.workloads.video import (
    DEFAULT_FPS,
    DEFAULT_FRAME_SIZE,
    DEFAULT_SECONDS,
    HEADER_SIZE,
    LABEL_SIZE,
    MAGIC,
    BadVideo,
    frame_number,
    main,
    make_frame,
    make_video,
    parse_video,
)


def test_round_trip() -> None:
    data = make_video(200, 4096)
    assert len(data) == HEADER_SIZE + 200 * 4096
    video = parse_video(data)
    assert (video.count, video.frame_size) == (200, 4096)
    assert video.frame(0).startswith(b"FRAME 00000000 ")
    assert video.frame(199) == make_frame(199, 4096)
    assert parse_video(bytearray(data)) == video
    assert parse_video(memoryview(data)) == video


@given(frames=st.integers(1, 300), frame_size=st.integers(LABEL_SIZE, 600))
def test_frames_are_continuous(frames: int, frame_size: int) -> None:
    video = parse_video(make_video(frames, frame_size))
    got = [video.frame(i) for i in range(video.count)]
    assert [frame_number(f) for f in got] == list(range(frames))
    assert {len(f) for f in got} == {frame_size}
    if frame_size > LABEL_SIZE:  # the filler moves too, not only the label
        assert all(a[LABEL_SIZE:] != b[LABEL_SIZE:] for a, b in itertools.pairwise(got))


def test_a_frame_past_the_end_is_refused() -> None:
    video = parse_video(make_video(3, 64))
    for index in (-1, 3):
        with pytest.raises(BadVideo, match=f"frame {index} does not exist: the video has 3"):
            video.frame(index)


GOOD = make_video(4, 32)
BAD = {
    "empty": (b"", "0 bytes are too few for a video"),
    "short header": (GOOD[:10], "10 bytes are too few"),
    "wrong magic": (b"NOTAVID1" + GOOD[8:], "not a video: it starts with b'NOTAVID1'"),
    "truncated": (GOOD[:-1], "promises 4 frames of 32 bytes"),
    "trailing bytes": (GOOD + b"x", "promises 4 frames of 32 bytes"),
    "no frames": (struct.pack(">8sII", MAGIC, 32, 0), "a video has 1 to"),
    "tiny frames": (struct.pack(">8sII", MAGIC, 4, 1) + b"abcd", "a frame is 15 to"),
}


@pytest.mark.parametrize("data,message", BAD.values(), ids=BAD.keys())
def test_bad_videos_are_refused_with_a_sentence(data: bytes, message: str) -> None:
    with pytest.raises(BadVideo, match=message) as info:
        parse_video(data)
    assert isinstance(info.value, RackError)
    text = str(info.value)
    assert not text[0].isupper() and not text.endswith(".")


def test_make_refuses_shapes_it_cannot_label() -> None:
    with pytest.raises(BadVideo, match="a video has 1 to"):
        make_video(0, 64)
    with pytest.raises(BadVideo, match="a frame is 15 to"):
        make_video(1, LABEL_SIZE - 1)


@pytest.mark.parametrize("junk", [b"", b"FRAME 0000", b"FRAMX 00000001 ", b"FRAME 0000000x "])
def test_frame_number_refuses_what_is_not_a_frame(junk: bytes) -> None:
    with pytest.raises(BadVideo, match="not a frame"):
        frame_number(junk)


def test_the_command_writes_the_default_video(tmp_path: Path) -> None:
    out = tmp_path / "video"
    assert main([str(out)]) == 0
    video = parse_video(out.read_bytes())
    assert video.count == DEFAULT_FPS * DEFAULT_SECONDS
    assert video.frame_size == DEFAULT_FRAME_SIZE
    assert main([str(tmp_path / "no" / "dir")]) == 1
    assert main(["--frame-size", "3", str(out)]) == 1
