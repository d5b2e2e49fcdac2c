"""What a kernel refuses to hand to C: every unsafe buffer is a named error, never a write."""

from __future__ import annotations

import numpy as np
import pytest

from agent.ec import InvalidBuffers
from agent.ec.buffers import MAX_LENGTH, address, check_buffers
from agent.ec.rs import parity_matrix

P = parity_matrix(3, 2)


def rows(n: int, length: int = 64) -> list[np.ndarray]:
    return [np.zeros(length, dtype=np.uint8) for _ in range(n)]


def test_good_buffers_give_the_length_and_addresses() -> None:
    ins, outs = rows(3), rows(2)
    length, in_addr, out_addr = check_buffers(P, ins, outs)
    assert length == 64
    assert in_addr == [address(a) for a in ins]
    assert out_addr == [address(a) for a in outs]
    block = np.zeros((3, 64), dtype=np.uint8)
    length, in_addr, _ = check_buffers(P, block, rows(2))
    assert in_addr == [address(block) + 64 * r for r in range(3)]


def test_odd_offsets_are_accepted() -> None:
    """ISA-L loads unaligned, so a view starting at an odd address is fine."""
    big = np.zeros(3 * 70 + 1, dtype=np.uint8)
    ins = [big[1 + 70 * i : 1 + 70 * i + 65] for i in range(3)]
    assert address(ins[0]) % 2 == 1
    assert check_buffers(P, ins, rows(2, 65))[0] == 65


@pytest.mark.parametrize(
    ("inputs", "outputs", "problem"),
    [
        (rows(2), rows(2), "needs 3 inputs|3 inputs are needed"),
        (rows(3), rows(3), "2 outputs are needed"),
        ([*rows(2), np.zeros(64, dtype=np.uint16)], rows(2), "input 2 is not a 1-D uint8"),
        ([*rows(2), np.zeros((2, 32), dtype=np.uint8)], rows(2), "input 2 is not a 1-D uint8"),
        ([*rows(2), np.zeros(128, dtype=np.uint8)[::2]], rows(2), "input 2 is not contiguous"),
        ([*rows(2), b"x" * 64], rows(2), "input 2 is not a numpy array"),
        ([*rows(2), np.zeros(63, dtype=np.uint8)], rows(2), "differ in length"),
        (rows(3), rows(2, 65), "inputs hold 64 bytes each but outputs 65"),
        (np.zeros((3, 64), dtype=np.uint8)[:, ::2], rows(2), "not a contiguous 2-D"),
        (np.zeros((4, 64), dtype=np.uint8), rows(2), "3 inputs are needed, not 4"),
    ],
)
def test_misshapen_buffers_are_refused(inputs: object, outputs: object, problem: str) -> None:
    with pytest.raises(InvalidBuffers, match=problem):
        check_buffers(P, inputs, outputs)  # type: ignore[arg-type]


def test_read_only_outputs_are_refused() -> None:
    out = np.frombuffer(bytes(64), dtype=np.uint8)
    with pytest.raises(InvalidBuffers, match="read-only"):
        check_buffers(P, rows(3), [out, rows(1)[0]])


def test_outputs_overlapping_anything_are_refused() -> None:
    big = np.zeros(1024, dtype=np.uint8)
    ins = [big[0:64], big[64:128], big[128:192]]
    with pytest.raises(InvalidBuffers, match="overlaps"):
        check_buffers(P, ins, [big[100:164], big[300:364]])  # output on an input
    with pytest.raises(InvalidBuffers, match="overlaps"):
        check_buffers(P, ins, [big[300:364], big[330:394]])  # two outputs
    block = big[:192].reshape(3, 64)
    with pytest.raises(InvalidBuffers, match="overlaps"):
        check_buffers(P, block, [big[150:214], big[400:464]])  # inside a 2-D input
    with pytest.raises(InvalidBuffers, match="overlaps"):  # a short span inside a long one
        check_buffers(P, [big[0:64], big[0:64], big[0:64]], big[10:138].reshape(2, 64))
    same = [big[0:64]] * 3  # one input read three times is fine
    assert check_buffers(P, same, [big[64:128], big[128:192]])[0] == 64


def test_bad_coefficients_are_refused() -> None:
    with pytest.raises(InvalidBuffers, match="coefficients"):
        check_buffers(P.astype(np.int16), rows(3), rows(2))  # type: ignore[arg-type]


def test_the_length_must_fit_a_c_int() -> None:
    """ec_encode_data takes ``int len``: 2 GiB shards are refused before C sees them."""
    huge = np.empty(MAX_LENGTH + 1, dtype=np.uint8)  # never touched: no memory is used
    outs = [np.empty(MAX_LENGTH + 1, dtype=np.uint8) for _ in range(2)]
    with pytest.raises(InvalidBuffers, match="more than a C int"):
        check_buffers(P, [huge] * 3, outs)
