"""The native kernel: ISA-L's ``ec_encode_data`` computes ``outputs = coefs @ inputs``.

ISA-L takes any coefficient matrix through ``ec_init_tables``, so it computes reedsolo's
parity matrix (and every recovery matrix derived from it) exactly: the field is the same
GF(2^8) with polynomial 0x11d. The tables are cached per coefficient matrix; each call
then costs two small pointer arrays and one C call, which releases the GIL (ctypes).

What C is handed is checked first (:func:`agent.ec.buffers.check_buffers`): 1-D,
C-contiguous ``uint8`` arrays of one length that fits a C ``int``, outputs writable and
overlapping nothing. Alignment is not required: ISA-L's vector loops use unaligned loads
and fall back to byte code for short tails (the tests pass odd offsets and odd lengths).

Large calls are split by byte range across a second thread (:data:`SPLIT_MIN`); the two
halves are independent column ranges, so the result is the same either way.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from agent.ec.buffers import U8, Buffers, check_buffers

__all__ = ["SPLIT_MIN", "IsalKernel", "IsalLibrary"]

SPLIT_MIN = 8 * 1024 * 1024
"""Input bytes (k x shard length) from which a call is split across two threads; 0 never.

Measured in ``bench/ec.py`` (``threads``, docs/ec.md): from 8 MiB of input two threads
ran 1.1-2x faster here; below it the hand-off costs more than it saves (0.2-0.5x at
64 KiB shards). The store's 4 MiB chunks are under it, so they stay on one thread."""

_VOIDP = ctypes.c_void_p


@dataclass(frozen=True, slots=True)
class IsalLibrary:
    """A loaded ISA-L (:mod:`agent.ec.isal_lib` finds it): the two functions we call."""

    source: str
    """``RACKCLOUD_EC_ISAL``, ``system`` or ``pyeclib``."""
    path: str
    ec_init_tables: Callable[..., None]
    ec_encode_data: Callable[..., None]


class IsalKernel:
    """GF(2^8) matrix product by ISA-L; ``name`` is what heartbeats and status report."""

    name = "isal"

    def __init__(self, library: IsalLibrary, *, split_min: int = SPLIT_MIN) -> None:
        self.library = library
        self.split_min = split_min
        self._encode = library.ec_encode_data
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._tables = lru_cache(maxsize=1024)(self._make_tables)

    def __repr__(self) -> str:
        return f"IsalKernel({self.library.path!r}, source={self.library.source!r})"

    def _make_tables(self, rows: int, k: int, coefs: bytes) -> ctypes.Array[ctypes.c_ubyte]:
        """ISA-L's expanded multiplication tables (32 bytes per coefficient at most)."""
        tables = (ctypes.c_ubyte * (32 * k * rows))()
        matrix = ctypes.create_string_buffer(coefs, len(coefs))
        self.library.ec_init_tables(k, rows, matrix, tables)
        return tables

    def tables(self, coefs: U8) -> ctypes.Array[ctypes.c_ubyte]:
        """ISA-L's tables for ``coefs`` (cached): what ``ec_encode_data`` takes."""
        rows, k = coefs.shape
        return self._tables(rows, k, np.ascontiguousarray(coefs).tobytes())

    def multiply(self, coefs: U8, inputs: Buffers, outputs: Buffers) -> None:
        """``outputs[r] = XOR over i of coefs[r, i] * inputs[i]``, written in place."""
        length, ins, outs = check_buffers(coefs, inputs, outputs)
        rows, k = coefs.shape
        if rows == 0 or length == 0:
            return
        if k == 0:
            for out in outputs:
                out[...] = 0
            return
        tables = self.tables(coefs)
        half = (length // 2) & ~63  # a cache-line boundary, so the halves share no line
        if self.split_min and k * length >= self.split_min and half:
            done: Future[None] = self._helper().submit(
                self._run, half, length - half, tables, ins, outs
            )
            try:
                self._run(0, half, tables, ins, outs)
            finally:
                done.result()  # never return while C may still write the caller's buffers
            return
        self._run(0, length, tables, ins, outs)

    def _run(
        self,
        offset: int,
        length: int,
        tables: ctypes.Array[ctypes.c_ubyte],
        ins: list[int],
        outs: list[int],
    ) -> None:
        in_ptrs = (_VOIDP * len(ins))(*[a + offset for a in ins])
        out_ptrs = (_VOIDP * len(outs))(*[a + offset for a in outs])
        self._encode(length, len(ins), len(outs), tables, in_ptrs, out_ptrs)

    def _helper(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="isal")
            return self._pool
