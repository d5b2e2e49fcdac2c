"""The kernels that compute the ``rs`` code, and the one new codecs use by default.

Both kernels compute the same product over the same field, so the choice changes the
speed and never the shards: a pool written on a node with ISA-L is read on a node
without it. This module is pure: the default is numpy until the process's entry point
installs the result of :func:`agent.ec.isal_lib.install`, which searches for ISA-L,
self-tests it with :func:`self_test` and logs the choice once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agent.ec.buffers import U8, Buffers, check_buffers
from agent.ec.kernel import gf_matmul

__all__ = [
    "ENV",
    "NUMPY",
    "Kernel",
    "KernelChoice",
    "NumpyKernel",
    "default_kernel",
    "self_test",
    "use_kernel",
]

ENV = "RACKCLOUD_EC_ISAL"
"""Names the one ISA-L library to use instead of the search; ``none`` turns it off
(read by :mod:`agent.ec.isal_lib`)."""


class Kernel(Protocol):
    """Computes ``outputs[r] = XOR over i of coefs[r, i] * inputs[i]`` over GF(2^8)."""

    @property
    def name(self) -> str:
        """``isal`` or ``numpy``; reported in heartbeats and ``rack status``."""
        ...

    def multiply(self, coefs: U8, inputs: Buffers, outputs: Buffers) -> None:
        """Write the product into ``outputs`` (buffers as :func:`check_buffers` accepts)."""
        ...


class NumpyKernel:
    """The portable kernel (:func:`agent.ec.kernel.gf_matmul`), always available."""

    name = "numpy"

    def __repr__(self) -> str:
        return "NumpyKernel()"

    def multiply(self, coefs: U8, inputs: Buffers, outputs: Buffers) -> None:
        """Compute in the thread's workspace, then copy each row to its output."""
        length, _, _ = check_buffers(coefs, inputs, outputs)
        product = gf_matmul(coefs, list(inputs), length, reuse_out=True)
        for row, out in enumerate(outputs):
            np.copyto(out, product[row])


NUMPY = NumpyKernel()


def self_test(kernel: Kernel) -> str | None:
    """None when ``kernel`` computes reedsolo's code exactly as the numpy kernel does.

    Short and odd lengths reach ISA-L's byte-wise tail and its vector loops alike; 10+4
    needs more output rows than one vector pass handles.
    """
    from agent.ec.rs import parity_matrix  # noqa: PLC0415 - rs imports this module

    rng = np.random.default_rng(0x11D)
    for k, m, length in ((4, 2, 4099), (10, 4, 1027), (3, 1, 17)):
        inputs = [rng.integers(0, 256, length, dtype=np.uint8) for _ in range(k)]
        want = [np.empty(length, dtype=np.uint8) for _ in range(m)]
        got = [np.empty(length, dtype=np.uint8) for _ in range(m)]
        NUMPY.multiply(parity_matrix(k, m), inputs, want)
        kernel.multiply(parity_matrix(k, m), inputs, got)
        if not all(np.array_equal(w, g) for w, g in zip(want, got, strict=True)):
            return f"its {k}+{m} parity differs from reedsolo's"
    return None


@dataclass(frozen=True)
class KernelChoice:
    """The kernel a process uses, the library behind it, and what was passed over."""

    kernel: Kernel
    library: str | None
    source: str | None
    refused: tuple[str, ...]
    searched: bool

    @property
    def name(self) -> str:
        return self.kernel.name

    def describe(self) -> str:
        """One line for the log."""
        if self.library is not None:
            skipped = f"; passed over: {'; '.join(self.refused)}" if self.refused else ""
            return f"erasure-code kernel: isal, {self.library} ({self.source}){skipped}"
        if not self.searched:
            return f"erasure-code kernel: numpy, ISA-L turned off by {ENV}"
        why = "; ".join(self.refused) or "no ISA-L library was found"
        return f"erasure-code kernel: numpy, ISA-L not used: {why}"


_default: Kernel = NUMPY


def use_kernel(kernel: Kernel) -> None:
    """Make ``kernel`` the default of codecs created from now on (the shell calls this)."""
    global _default  # noqa: PLW0603 - the process-wide default, set once at start
    _default = kernel


def default_kernel() -> Kernel:
    """The kernel new ``rs`` codecs use: numpy unless the entry point installed ISA-L."""
    return _default
