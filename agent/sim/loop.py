"""An asyncio event loop on virtual time: it never sleeps, it jumps to the next timer.

The real node code runs on it unchanged (``asyncio.sleep``, ``asyncio.timeout``,
``call_later`` all read the loop's clock), and nothing outside the simulation feeds it:
no sockets, threads or signals. Given the same callbacks in the same order it runs them
in the same order, so a seeded world replays exactly.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Mapping
from typing import Any


class Deadlock(RuntimeError):
    """Nothing is scheduled and nothing can arrive: the simulated world has stopped."""


class _NoSelector(selectors.BaseSelector):
    """Holds registrations (asyncio registers its self-pipe) but never reports events;
    a wait of ``timeout`` seconds advances the loop's clock instead of sleeping."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        self._advance = advance
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, -1, events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Deadlock("no timer is set and nothing can arrive")
        self._advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` is virtual; ``after_step`` (if set) runs after every batch of callbacks."""

    def __init__(self) -> None:
        self._now = 0.0
        self.after_step: Callable[[], None] | None = None
        super().__init__(selector=_NoSelector(self._advance))

    def time(self) -> float:
        return self._now

    def _advance(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    def _run_once(self) -> None:
        super()._run_once()  # type: ignore[misc]
        if self.after_step is not None:
            self.after_step()
