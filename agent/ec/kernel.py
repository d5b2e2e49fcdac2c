"""The bulk kernel: ``out[r] = XOR over i of coefs[r, i] * inputs[i]`` over GF(2^8).

Encoding (coefficients = parity matrix) and every rebuild (coefficients = a row of an
inverted submatrix) are this one operation, so all the speed work lives here. It is plain
numpy; the costs that matter on a 2-core box (measured in ``bench/ec.py``) are:

* ``np.take`` is the only vectorised gather numpy has. It costs ~0.6 ns per element
  whatever the element width, and its index must be ``intp`` (a cast costing ~0.2 ns per
  element). So the kernel gathers as *few, wide* elements as it can:

  - "pair" groups (1 or 2 output rows): the input is read as ``uint16``, i.e. two bytes
    per lookup, in a 65536-entry table whose entry holds both products for every output
    row of the group (``uint16`` for one row, ``uint32`` for two: 128 or 256 KiB). Half
    the gathers of a byte table, and the index cast is shared by the group's rows.
  - "byte" groups (3 to 8 output rows): the input is read byte by byte in a 256-entry
    table whose entry packs the products for all rows (``uint32``/``uint64``, 1-2 KiB,
    stays in L1). A pair table for 3+ rows would be 512 KiB per input and thrash L2.

* Work goes in blocks of :data:`BLOCK` bytes per shard so the index, the accumulator and
  the tables stay in cache; the accumulator is XORed in place (``out=``). Coefficient 0
  is skipped and coefficient 1 of a single-row group is a plain XOR.
* Splitting the packed accumulator back into rows is a shift and a narrowing cast per
  row (vectorised), not a strided copy.
* Scratch buffers (and, on request, the output) are reused per thread: in this VM a
  fresh page from the OS costs ~3.5 us, so freshly allocated multi-MiB buffers could
  double the time of a call.

Tables depend only on the coefficients, so they are cached (bounded LRUs: at most
16 MiB of pair tables and 2 MiB of byte tables per process). The byte layout of each
table entry is built from the host's own ``uint16`` view, so the code is endian-neutral.
Threads do not help: two threads on the two halves measured 0.9x of one thread.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agent.ec.gf import MUL

__all__ = ["BLOCK", "MAX_PAIR_INPUTS", "clear_workspace", "gf_matmul"]

BLOCK = 131072
"""Bytes of each shard per pass: 128 KiB measured best (64 KiB-256 KiB are within noise)."""

MAX_PAIR_INPUTS = 32
"""Above this many inputs the pair tables of one call would not fit the table cache."""

MAX_REUSED_OUT = 16 * 1024 * 1024
"""Largest output (bytes) kept in the per-thread workspace by ``reuse_out=True``."""

SCRATCH_BUDGET = 8 * 1024 * 1024
"""Upper bound on per-block scratch (indexes + accumulators); many rows shrink the block."""

_LITTLE = sys.byteorder == "little"
_PAIR_BYTES = np.arange(65536, dtype=np.uint16).view(np.uint8).reshape(65536, 2)
_WIDE: dict[int, type[np.unsignedinteger[Any]]] = {
    1: np.uint8,
    2: np.uint16,
    4: np.uint32,
    8: np.uint64,
}

U8 = NDArray[np.uint8]
Table = NDArray[np.unsignedinteger[Any]]


def _lane_shift(lane: int, lanes: int, lane_bits: int) -> int:
    """Bit offset, in the packed integer, of the lane stored at byte position ``lane``."""
    return lane_bits * (lane if _LITTLE else lanes - 1 - lane)


@lru_cache(maxsize=64)
def _pair_table(coefs: tuple[int, ...]) -> Table:
    """65536-entry table: index = two input bytes, entry = their products for each row."""
    lanes = len(coefs)
    raw = np.empty((65536, lanes, 2), dtype=np.uint8)
    for lane, c in enumerate(coefs):
        raw[:, lane, :] = MUL[c][_PAIR_BYTES]
    table: Table = raw.reshape(65536, 2 * lanes).view(_WIDE[2 * lanes]).ravel()
    table.flags.writeable = False
    return table


@lru_cache(maxsize=1024)
def _byte_table(coefs: tuple[int, ...], width: int) -> Table:
    """256-entry table: index = one input byte, entry = its product for each row."""
    raw = np.zeros((256, width), dtype=np.uint8)
    for lane, c in enumerate(coefs):
        raw[:, lane] = MUL[c]
    table: Table = raw.view(_WIDE[width]).ravel()
    table.flags.writeable = False
    return table


class _Workspace(threading.local):
    """Per-thread scratch buffers, kept between calls.

    Freshly allocated multi-MiB arrays are often fresh pages from the OS (glibc returns
    freed ones), and the page faults measured up to half the encode time when other code
    allocates in between; reusing warm buffers avoids that for everything but the bytes
    objects the API must return. Buffers are raw bytes keyed by role, viewed as the dtype
    needed, so a thread holds about :data:`SCRATCH_BUDGET` plus the largest reused output
    (:data:`MAX_REUSED_OUT`).
    """

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, int], NDArray[np.uint8]] = {}

    def get(self, name: str, slot: int, n: int, dtype: type[np.generic]) -> NDArray[Any]:
        size = n * np.dtype(dtype).itemsize
        buf = self.buffers.get((name, slot))
        if buf is None or buf.shape[0] < size:
            buf = np.empty(size, dtype=np.uint8)  # numpy aligns data for any dtype
            self.buffers[(name, slot)] = buf
        return buf[:size].view(dtype)


_WORKSPACE = _Workspace()


def clear_workspace() -> None:
    """Drop this thread's scratch buffers (they are otherwise kept for the next call)."""
    _WORKSPACE.buffers.clear()


class _Group:
    """Output rows that share one accumulator; subclasses differ in lookup granularity."""

    def __init__(self, rows: Sequence[int], coefs: U8) -> None:
        self.rows = list(rows)
        self.terms: list[tuple[int, Table | None]] = []
        self.started = False

    acc: Table
    tmp: Table

    def begin(self) -> None:
        self.started = False

    def _gather(self, table: Table, idx: NDArray[np.intp], n: int) -> None:
        """Accumulate ``table[idx]`` into the first ``n`` lanes (the first term overwrites)."""
        acc = self.acc[:n]
        if self.started:
            tmp = self.tmp[:n]
            np.take(table, idx, out=tmp, mode="wrap")
            np.bitwise_xor(acc, tmp, out=acc)
        else:
            np.take(table, idx, out=acc, mode="wrap")
        self.started = True

    def _spill(self, n: int, per: int, bits: int, dest: Callable[[int], NDArray[Any]]) -> None:
        """Split the packed accumulator into its rows: lane ``i`` goes to ``dest(row i)``."""
        acc = self.acc[:n]
        if not self.started:
            acc[...] = 0
        tmp = self.tmp[:n]
        for lane, row in enumerate(self.rows):
            shift = _lane_shift(lane, per, bits)
            if shift:
                np.right_shift(acc, shift, out=tmp)
                np.copyto(dest(row), tmp, casting="unsafe")
            else:
                np.copyto(dest(row), acc, casting="unsafe")


class _PairGroup(_Group):
    """One or two rows, looked up two input bytes at a time."""

    def __init__(self, rows: Sequence[int], coefs: U8, half: int, slot: int) -> None:
        super().__init__(rows, coefs)
        self.lanes = len(self.rows)
        for i in range(coefs.shape[1]):
            column = tuple(int(c) for c in coefs[self.rows, i])
            if not any(column):
                continue
            if column == (1,):
                self.terms.append((i, None))
            else:
                self.terms.append((i, _pair_table(column)))
        dtype = _WIDE[2 * self.lanes]
        self.acc: Table = _WORKSPACE.get("acc", slot, half, dtype)
        self.tmp: Table = _WORKSPACE.get("tmp", slot, half, dtype)

    def add(self, table: Table | None, idx: NDArray[np.intp], x16: NDArray[np.uint16]) -> None:
        n = x16.shape[0]
        if table is not None:
            self._gather(table, idx, n)
            return
        acc = self.acc[:n]  # coefficient 1: the input itself
        if self.started:
            np.bitwise_xor(acc, x16, out=acc)
        else:
            np.copyto(acc, x16)
        self.started = True

    def flush(self, out16: list[NDArray[np.uint16]], s2: int, e2: int) -> None:
        self._spill(e2 - s2, self.lanes, 16, lambda row: out16[row][s2:e2])


class _ByteGroup(_Group):
    """Up to eight rows, looked up one input byte at a time in an L1-sized table."""

    def __init__(self, rows: Sequence[int], coefs: U8, block: int, slot: int) -> None:
        super().__init__(rows, coefs)
        self.lanes = len(self.rows)
        self.width = next(w for w in (1, 2, 4, 8) if w >= self.lanes)
        for i in range(coefs.shape[1]):
            column = tuple(int(c) for c in coefs[self.rows, i])
            if any(column):
                self.terms.append((i, _byte_table(column, self.width)))
        dtype = _WIDE[self.width]
        self.acc: Table = _WORKSPACE.get("acc", slot, block, dtype)
        self.tmp: Table = _WORKSPACE.get("tmp", slot, block, dtype)

    def add(self, table: Table, idx: NDArray[np.intp]) -> None:
        self._gather(table, idx, idx.shape[0])

    def flush(self, out: U8, s: int, e: int) -> None:
        self._spill(e - s, self.width, 8, lambda row: out[row, s:e])


def _block_size(plan: list[tuple[str, list[int]]], block: int) -> int:
    """Shrink ``block`` (kept even, >= 4 KiB) until the scratch fits :data:`SCRATCH_BUDGET`."""
    per_byte = 12  # 8-byte byte index + 4-byte share of the half-length pair index
    for kind, chunk in plan:
        width = (
            2 * len(chunk) if kind == "pair" else next(w for w in (1, 2, 4, 8) if w >= len(chunk))
        )
        per_byte += width if kind == "pair" else 2 * width  # acc + tmp
    fitting = SCRATCH_BUDGET // per_byte & ~1
    return max(4096, min(block, fitting))


def _split_rows(rows: int, inputs: int) -> list[tuple[str, list[int]]]:
    """Chunks of at most 8 rows; 1-2 row chunks use pair tables when they fit the cache."""
    plan: list[tuple[str, list[int]]] = []
    for start in range(0, rows, 8):
        chunk = list(range(start, min(start + 8, rows)))
        kind = "pair" if len(chunk) <= 2 and inputs <= MAX_PAIR_INPUTS else "byte"
        plan.append((kind, chunk))
    return plan


def gf_matmul(
    coefs: U8,
    inputs: Sequence[U8],
    length: int,
    *,
    block: int | None = None,
    reuse_out: bool = False,
) -> U8:
    """Return the ``rows x length`` array ``coefs @ inputs`` over GF(2^8).

    ``coefs`` is ``rows x len(inputs)``; each input is a 1-D ``uint8`` array of ``length``
    bytes (any alignment). ``block`` (even) defaults to :data:`BLOCK`, shrunk for many
    rows. With ``reuse_out`` the result lives in this thread's workspace and is overwritten
    by the thread's next call: copy it out (``tobytes``, ``b"".join``) before calling again.
    """
    rows, k = coefs.shape
    if len(inputs) != k:
        raise ValueError(f"{k} coefficient columns but {len(inputs)} inputs")
    if reuse_out and rows * length <= MAX_REUSED_OUT:
        out: U8 = _WORKSPACE.get("out", 0, rows * length, np.uint8).reshape(rows, length)
    else:
        out = np.empty((rows, length), dtype=np.uint8)
    if rows == 0 or length == 0:
        return out
    plan = _split_rows(rows, k)
    block = _block_size(plan, BLOCK) if block is None else block
    block = max(2, min(block, length + (length & 1)))
    even = length & ~1
    half = min(block, even) // 2

    pair_groups: list[_PairGroup] = []
    byte_groups: list[_ByteGroup] = []
    for slot, (kind, chunk) in enumerate(plan):
        if kind == "pair":
            pair_groups.append(_PairGroup(chunk, coefs, half, slot))
        else:
            byte_groups.append(_ByteGroup(chunk, coefs, block, slot))

    # Per input: which groups use it, and whether it needs the 16-bit or 8-bit index.
    pair_terms: list[list[tuple[_PairGroup, Table | None]]] = [[] for _ in range(k)]
    byte_terms: list[list[tuple[_ByteGroup, Table]]] = [[] for _ in range(k)]
    for pg in pair_groups:
        for i, ptable in pg.terms:
            pair_terms[i].append((pg, ptable))
    for bg in byte_groups:
        for i, btable in bg.terms:
            if btable is not None:
                byte_terms[i].append((bg, btable))
    need_idx16 = [any(t is not None for _, t in pair_terms[i]) for i in range(k)]
    x16s = [x[:even].view(np.uint16) for x in inputs] if pair_groups else []
    out16 = [out[r, :even].view(np.uint16) for r in range(rows)] if pair_groups else []
    idx16: NDArray[np.intp] = _WORKSPACE.get("idx", 16, half if any(need_idx16) else 0, np.intp)
    idx8: NDArray[np.intp] = _WORKSPACE.get("idx", 8, block if byte_groups else 0, np.intp)

    for s in range(0, length, block):
        e = min(s + block, length)
        s2, e2 = s // 2, min(e, even) // 2
        do_pairs = e2 > s2
        for g in pair_groups:
            g.begin()
        for bg in byte_groups:
            bg.begin()
        for i in range(k):
            if pair_terms[i] and do_pairs:
                x16 = x16s[i][s2:e2]
                ix16 = idx16[: e2 - s2]
                if need_idx16[i]:
                    np.copyto(ix16, x16, casting="unsafe")
                for pg, ptable in pair_terms[i]:
                    pg.add(ptable, ix16, x16)
            if byte_terms[i]:
                ix8 = idx8[: e - s]
                np.copyto(ix8, inputs[i][s:e], casting="unsafe")
                for bg, btable in byte_terms[i]:
                    bg.add(btable, ix8)
        if do_pairs:
            for g in pair_groups:
                g.flush(out16, s2, e2)
        for bg in byte_groups:
            bg.flush(out, s, e)

    if length & 1 and pair_groups:  # the odd last byte of the pair rows, one scalar column
        last = [int(x[length - 1]) for x in inputs]
        for g in pair_groups:
            for row in g.rows:
                acc = 0
                for i, v in enumerate(last):
                    acc ^= int(MUL[coefs[row, i], v])
                out[row, length - 1] = acc
    return out
