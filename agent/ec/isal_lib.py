"""Finding and loading an ISA-L library for the ``rs`` codec's native kernel.

The search is explicit, in this order, and the first library that loads, has the two
symbols and passes a self-test wins:

1. ``$RACKCLOUD_EC_ISAL``, when set: a path to one library, and only that one; ``none``
   (or an empty value) means search nothing and use the numpy kernel.
2. The system's ``libisal.so.2`` (Debian ``libisal2``; the Ansible role installs it), as
   the dynamic loader finds it.
3. The copy bundled in the pyeclib wheel (``site-packages/pyeclib.libs/libisal*.so*``),
   found without importing pyeclib.

The self-test encodes a small block with reedsolo's own parity matrix through the library
and through the numpy kernel and refuses the library unless both agree byte for byte, so
a library with another field or a broken build can never write shards other kernels
cannot read. Loading never raises: every refusal becomes a reason string.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.ec.isal_kernel import IsalKernel, IsalLibrary
from agent.ec.kernels import ENV, NUMPY, KernelChoice, self_test, use_kernel

__all__ = [
    "ENV",
    "SYSTEM_NAMES",
    "Candidate",
    "LoadResult",
    "candidates",
    "choose",
    "install",
    "load",
    "search_enabled",
]

log = logging.getLogger("agent.ec")


SYSTEM_NAMES = ("libisal.so.2",)
"""The soname of ISA-L's stable ABI (2.x), looked up by the dynamic loader."""

_OFF = frozenset({"", "none"})


@dataclass(frozen=True, slots=True)
class Candidate:
    """One place to try: where the name came from and what to hand to ``dlopen``."""

    source: str
    """``RACKCLOUD_EC_ISAL``, ``system`` or ``pyeclib``."""
    path: str


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The library chosen (or None) and why each earlier candidate was passed over."""

    library: IsalLibrary | None
    refused: tuple[str, ...]


def _pyeclib_copies() -> list[Path]:
    """ISA-L libraries auditwheel bundled next to pyeclib, without importing pyeclib."""
    try:
        spec = importlib.util.find_spec("pyeclib")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    site = Path(next(iter(spec.submodule_search_locations))).parent
    return sorted((site / "pyeclib.libs").glob("libisal*.so*"))


def search_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when ``$RACKCLOUD_EC_ISAL`` says ``none`` (or is set but empty)."""
    value = (os.environ if env is None else env).get(ENV)
    return value is None or value.strip().lower() not in _OFF


def candidates(env: Mapping[str, str] | None = None) -> list[Candidate]:
    """The libraries to try, in order (empty when the search is turned off)."""
    value = (os.environ if env is None else env).get(ENV)
    if value is not None:
        named = value.strip()
        return [] if named.lower() in _OFF else [Candidate(ENV, named)]
    found = [Candidate("system", name) for name in SYSTEM_NAMES]
    found += [Candidate("pyeclib", str(path)) for path in _pyeclib_copies()]
    return found


def _open(candidate: Candidate) -> IsalLibrary:
    """dlopen the candidate and bind the two symbols with their C signatures."""
    lib = ctypes.CDLL(candidate.path)  # OSError when it cannot be opened
    init = lib.ec_init_tables  # AttributeError when the symbol is missing
    encode = lib.ec_encode_data
    # void ec_init_tables(int k, int rows, unsigned char *a, unsigned char *gftbls)
    init.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    init.restype = None
    # void ec_encode_data(int len, int k, int rows, unsigned char *gftbls,
    #                     unsigned char **data, unsigned char **coding)
    encode.argtypes = (
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
    )
    encode.restype = None
    return IsalLibrary(candidate.source, _resolved(candidate.path), init, encode)


def _resolved(path: str) -> str:
    """The file the loader mapped for a bare soname (for the log), else ``path`` itself."""
    if "/" in path:
        return path
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            for line in maps:
                mapped = line.rstrip("\n").split(maxsplit=5)
                if len(mapped) == 6 and Path(mapped[5]).name.startswith(path):
                    return mapped[5]
    except OSError:
        pass
    return path


def _test(library: IsalLibrary) -> str | None:
    return self_test(IsalKernel(library))


def load(
    found: list[Candidate],
    test: Callable[[IsalLibrary], str | None] = _test,
) -> LoadResult:
    """Try ``found`` in order; ``test`` returns None for a good library, else why not."""
    refused: list[str] = []
    for candidate in found:
        where = f"{candidate.path} ({candidate.source})"
        try:
            library = _open(candidate)
        except OSError as exc:
            refused.append(f"{where} cannot be loaded: {exc}")
            continue
        except AttributeError as exc:
            refused.append(f"{where} lacks a symbol: {exc}")
            continue
        try:
            problem = test(library)
        except Exception as exc:  # a broken library must never stop the agent
            problem = f"it raised {type(exc).__name__}: {exc}"
        if problem is not None:
            refused.append(f"{where} fails the self-test: {problem}")
            continue
        return LoadResult(library, tuple(refused))
    return LoadResult(None, tuple(refused))


def choose(env: Mapping[str, str] | None = None) -> KernelChoice:
    """Search as this module describes and say what to use; never raises."""
    searched = search_enabled(env)
    result = load(candidates(env))
    if result.library is None:
        return KernelChoice(NUMPY, None, None, result.refused, searched)
    lib = result.library
    return KernelChoice(IsalKernel(lib), lib.path, lib.source, result.refused, searched)


_lock = threading.Lock()
_installed: KernelChoice | None = None


def install(*, quiet: bool = False) -> KernelChoice:
    """Choose once per process, make it the default of new codecs, and log it once.

    Entry points call this at start (the agent, the ``rack`` CLI, workloads). ``quiet``
    skips the log line, for command-line tools whose stderr belongs to the operator.
    """
    global _installed  # noqa: PLW0603 - one choice per process
    with _lock:
        if _installed is None:
            _installed = choose()
            use_kernel(_installed.kernel)
            if not quiet:
                fell_back = _installed.library is None and _installed.searched
                log.log(logging.WARNING if fell_back else logging.INFO, "%s", _installed.describe())
        return _installed
