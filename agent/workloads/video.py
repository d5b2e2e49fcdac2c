"""The synthetic video the demo stream plays: fixed-size frames that name their index.

A real codec would hide what the demo is about. Here every frame starts with
``FRAME 00000042 ``, so a viewer (or a test) can check from the bytes alone that frames
arrive in order and see exactly where a failover resumed.

Layout (big-endian)::

    b"RACKVID1" | frame_size: u32 | frame_count: u32 | frame 0 | frame 1 | ...

Each frame is ``frame_size`` bytes: its 15-byte label, then printable filler rotated by
the index (so consecutive frames differ everywhere, not only in the label).

Default size: 25 fps x 120 s of 4 KiB frames, 3,000 frames, about 11.7 MiB. A lab put of
that takes well under a second (about 125 MiB/s, docs/objects.md) and a restarted instance
reads it back as fast; two minutes of frames is long enough that a demo rarely sees the
wrap-around, and 4 KiB at 25 fps (100 KiB/s per viewer) keeps many viewers cheap.

``python -m agent.workloads.video FILE|-`` writes one, for ``rack put``.
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass

from agent.errors import RackError

MAGIC = b"RACKVID1"
_HEADER = struct.Struct(">8sII")
HEADER_SIZE = _HEADER.size
LABEL = b"FRAME %08d "
LABEL_SIZE = len(LABEL % 0)
MAX_FRAMES = 10**8
"""The label has 8 digits."""
MAX_FRAME_SIZE = 16 * 1024 * 1024
"""A frame is one HTTP chunk; anything larger is a mistake, not a video."""
DEFAULT_FPS = 25
DEFAULT_SECONDS = 120
DEFAULT_FRAME_SIZE = 4096
_FILLER = bytes(range(33, 127))


class BadVideo(RackError):
    """Bytes that are not a video of this format, or a frame that does not exist."""


@dataclass(frozen=True, slots=True)
class Video:
    """A parsed video: ``frame(i)`` is the bytes of frame ``i`` (0 <= i < count)."""

    data: bytes
    frame_size: int
    count: int

    def frame(self, index: int) -> bytes:
        if not 0 <= index < self.count:
            raise BadVideo(f"frame {index} does not exist: the video has {self.count} frames")
        start = HEADER_SIZE + index * self.frame_size
        return self.data[start : start + self.frame_size]


def _check_shape(frames: int, frame_size: int) -> None:
    if not 1 <= frames <= MAX_FRAMES:
        raise BadVideo(f"a video has 1 to {MAX_FRAMES} frames, not {frames}")
    if not LABEL_SIZE <= frame_size <= MAX_FRAME_SIZE:
        raise BadVideo(
            f"a frame is {LABEL_SIZE} to {MAX_FRAME_SIZE} bytes (it starts with its "
            f"{LABEL_SIZE}-byte label), not {frame_size}"
        )


def make_frame(index: int, frame_size: int) -> bytes:
    """Frame ``index``: its label, then the filler rotated by ``index``."""
    body = frame_size - LABEL_SIZE
    shift = index % len(_FILLER)
    rotated = _FILLER[shift:] + _FILLER[:shift]
    reps = -(-body // len(rotated))
    return LABEL % index + (rotated * reps)[:body]


def make_video(frames: int, frame_size: int = DEFAULT_FRAME_SIZE) -> bytes:
    """A whole video of ``frames`` frames of ``frame_size`` bytes each."""
    _check_shape(frames, frame_size)
    parts = [_HEADER.pack(MAGIC, frame_size, frames)]
    parts += (make_frame(i, frame_size) for i in range(frames))
    return b"".join(parts)


def parse_video(data: bytes | bytearray | memoryview) -> Video:
    """Check the header and the length; the frames are then served as they are."""
    if len(data) < HEADER_SIZE:
        raise BadVideo(f"{len(data)} bytes are too few for a video: its header is {HEADER_SIZE}")
    magic, frame_size, count = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BadVideo(f"not a video: it starts with {bytes(magic)!r}, not {MAGIC!r}")
    _check_shape(count, frame_size)
    want = HEADER_SIZE + frame_size * count
    if len(data) != want:
        raise BadVideo(
            f"the video header promises {count} frames of {frame_size} bytes ({want} bytes "
            f"in all), but there are {len(data)} bytes"
        )
    return Video(bytes(data), frame_size, count)


def frame_number(frame: bytes | bytearray | memoryview) -> int:
    """The index a frame's label names (what a viewer checks for continuity)."""
    label = bytes(frame[:LABEL_SIZE])
    digits = label[6:14]
    if len(label) < LABEL_SIZE or label[:6] != b"FRAME " or label[14:] != b" ":
        raise BadVideo(f"not a frame: it starts with {label!r}")
    if not digits.isdigit():
        raise BadVideo(f"not a frame: its label {label!r} has no index")
    return int(digits)


def main(argv: list[str] | None = None) -> int:
    """Write a video file (or stdout), to be stored with ``rack put POOL/NAME FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m agent.workloads.video", description=main.__doc__
    )
    parser.add_argument("file", metavar="FILE|-")
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS)
    parser.add_argument("--seconds", type=int, default=DEFAULT_SECONDS)
    parser.add_argument("--frame-size", type=int, default=DEFAULT_FRAME_SIZE)
    args = parser.parse_args(argv)
    try:
        data = make_video(args.fps * args.seconds, args.frame_size)
        if args.file == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            with open(args.file, "wb") as f:
                f.write(data)
    except BadVideo as exc:
        print(f"video: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"video: cannot write {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
