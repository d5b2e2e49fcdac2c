"""A log that says a repeated complaint once per period, with how many it swallowed.

Peers can send garbage as fast as the network allows; the agent must neither crash nor
flood its log, yet the operator must still see that it happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

MAX_KEYS = 256
"""Distinct keys tracked per log; past that, complaints share one bucket per format."""


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        per_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.per_seconds = per_seconds
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._swallowed: dict[tuple[str, str], int] = {}

    def warning(self, fmt: str, *args: object, key: str = "") -> bool:
        """Log unless the same complaint was logged within the period; returns whether it
        logged. ``key`` (a peer, a name) keeps one source from hiding another's complaint."""
        now = self._clock()
        bucket = (fmt, key)
        if bucket not in self._last and len(self._last) >= MAX_KEYS:
            self._last = {b: t for b, t in self._last.items() if now - t < self.per_seconds}
            if len(self._last) >= MAX_KEYS:
                bucket = (fmt, "")  # a flood of names: fall back to one bucket per format
        last = self._last.get(bucket)
        if last is not None and now - last < self.per_seconds:
            self._swallowed[bucket] = self._swallowed.get(bucket, 0) + 1
            return False
        swallowed = self._swallowed.pop(bucket, 0)
        self._last[bucket] = now
        suffix = f" (and {swallowed} more like it)" if swallowed else ""
        self.logger.warning(fmt + suffix, *args)
        return True
