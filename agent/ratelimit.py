"""A log that says a repeated complaint once per period, with how many it swallowed.

Peers can send garbage as fast as the network allows; the agent must neither crash nor
flood its log, yet the operator must still see that it happens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


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
        self._last: dict[str, float] = {}
        self._swallowed: dict[str, int] = {}

    def warning(self, fmt: str, *args: object) -> bool:
        """Log unless ``fmt`` was logged within the period; returns whether it logged."""
        now = self._clock()
        last = self._last.get(fmt)
        if last is not None and now - last < self.per_seconds:
            self._swallowed[fmt] = self._swallowed.get(fmt, 0) + 1
            return False
        swallowed = self._swallowed.pop(fmt, 0)
        self._last[fmt] = now
        suffix = f" (and {swallowed} more like it)" if swallowed else ""
        self.logger.warning(fmt + suffix, *args)
        return True
