"""The checks every buffer passes before a kernel touches it, and their raw addresses.

The native kernel hands C raw pointers and a length, so a wrong shape there would read or
write past a buffer instead of raising. Both kernels therefore take only what this module
accepts: 1-D, C-contiguous ``uint8`` arrays of one common length that fits a C ``int``
(or the rows of one C-contiguous 2-D array, which costs one check instead of one per
row), with outputs writable and overlapping neither an input nor another output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from agent.ec.errors import InvalidBuffers

__all__ = ["MAX_LENGTH", "U8", "Buffers", "address", "check_buffers"]

U8 = NDArray[np.uint8]
Buffers: TypeAlias = Sequence[U8] | U8
"""Equal-length byte rows: a sequence of 1-D arrays, or one 2-D array (its rows)."""

MAX_LENGTH = 2**31 - 1
"""ISA-L takes the length as a C ``int``."""


def address(array: U8) -> int:
    """The address of the array's first byte."""
    data: int = array.__array_interface__["data"][0]
    return data


def _rows(role: str, buffers: Buffers, count: int) -> tuple[int, list[int], bool, bool]:
    """(length, address of each row, all writable, rows adjacent) of ``count`` rows.

    Everything is read from one ``__array_interface__`` per array (about 1 us): its
    ``strides`` is None exactly when the array is C-contiguous.
    """
    if isinstance(buffers, np.ndarray):
        face = buffers.__array_interface__
        if face["typestr"] != "|u1" or len(face["shape"]) != 2 or face["strides"] is not None:
            raise InvalidBuffers(f"the {role}s are not a contiguous 2-D uint8 array")
        rows, length = face["shape"]
        if rows != count:
            raise InvalidBuffers(f"{count} {role}s are needed, not {rows}")
        base, readonly = face["data"]
        return length, [base + r * length for r in range(count)], not readonly, True
    if len(buffers) != count:
        raise InvalidBuffers(f"{count} {role}s are needed, not {len(buffers)}")
    lengths: set[int] = set()
    addresses: list[int] = []
    writable = True
    for index, array in enumerate(buffers):
        if not isinstance(array, np.ndarray):
            raise InvalidBuffers(f"{role} {index} is not a numpy array")
        face = array.__array_interface__
        if face["typestr"] != "|u1" or len(face["shape"]) != 1:
            raise InvalidBuffers(f"{role} {index} is not a 1-D uint8 array")
        if face["strides"] is not None:
            raise InvalidBuffers(f"{role} {index} is not contiguous")
        lengths.add(face["shape"][0])
        start, readonly = face["data"]
        addresses.append(start)
        writable = writable and not readonly
    if len(lengths) > 1:
        raise InvalidBuffers(f"the {role}s differ in length: {sorted(lengths)}")
    return (lengths.pop() if lengths else -1), addresses, writable, False


def _spans(addresses: list[int], length: int, adjacent: bool) -> list[tuple[int, int]]:
    """Memory ranges (start, end): one for the rows of a 2-D array, else one per row."""
    if adjacent:
        return [(addresses[0], addresses[-1] + length)] if addresses else []
    return [(a, a + length) for a in addresses]


def check_buffers(coefs: U8, inputs: Buffers, outputs: Buffers) -> tuple[int, list[int], list[int]]:
    """Return (length, input addresses, output addresses); raise :class:`InvalidBuffers`."""
    if not isinstance(coefs, np.ndarray) or coefs.dtype != np.uint8 or coefs.ndim != 2:
        raise InvalidBuffers("the coefficients are not a 2-D uint8 matrix")
    rows, k = (int(d) for d in coefs.shape)
    in_length, ins, _, ins_adjacent = _rows("input", inputs, k)
    out_length, outs, writable, outs_adjacent = _rows("output", outputs, rows)
    if -1 not in (in_length, out_length) and in_length != out_length:
        raise InvalidBuffers(f"inputs hold {in_length} bytes each but outputs {out_length}")
    length = max(in_length, out_length, 0)
    if length > MAX_LENGTH:
        raise InvalidBuffers(f"{length} bytes per shard is more than a C int can count")
    if not writable:
        raise InvalidBuffers("an output is read-only")
    if length and outs:
        spans = sorted(
            [(start, end, True) for start, end in _spans(outs, length, outs_adjacent)]
            + [(start, end, False) for start, end in _spans(ins, length, ins_adjacent)]
        )
        reach = reach_out = 0  # furthest end of any span / of an output span so far
        for start, end, out in spans:
            if start < (reach if out else reach_out):
                raise InvalidBuffers("an output overlaps another buffer in memory")
            reach = max(reach, end)
            if out:
                reach_out = max(reach_out, end)
    return length, ins, outs
