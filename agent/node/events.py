"""The node's event log: what happened to leases and containers, on one time base.

Failover is judged from both sides at once (the old node stopped a container before the
new one started it), so every agent appends events stamped with its monotonic clock to
``DATA_DIR/events.jsonl``. On one machine (the lab) every agent's monotonic clock is the
same clock, so a drill lines the files up without converting anything. The simulation
records the same events with true virtual time, and its checker reads them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

log = logging.getLogger("agent.events")

MAX_EVENTS_BYTES = 16 * 1024 * 1024
"""The log is cut in half past this size (an agent up for months must not fill a disk)."""


class EventSink(Protocol):
    def __call__(self, kind: str, **fields: object) -> None: ...


def no_events(kind: str, **fields: object) -> None:
    """For environments that keep no event log."""


class JsonlEvents:
    """Appends one JSON object per line: ``{"t", "node", "kind", ...fields}``."""

    def __init__(self, path: Path, node: str, clock: Callable[[], float]) -> None:
        self.path = path
        self.node = node
        self.clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, kind: str, **fields: object) -> None:
        record = {"t": round(self.clock(), 6), "node": self.node, "kind": kind, **fields}
        line = json.dumps(record, separators=(",", ":")) + "\n"
        try:
            if self.path.exists() and self.path.stat().st_size > MAX_EVENTS_BYTES:
                self._halve()
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
        except OSError as exc:
            log.warning("cannot append to the event log %s: %s", self.path, exc)

    def _halve(self) -> None:
        data = self.path.read_bytes()
        keep = data[len(data) // 2 :]
        self.path.write_bytes(keep[keep.find(b"\n") + 1 :])


def read_events(path: Path) -> list[dict[str, object]]:
    """The events of one file; a torn last line (a killed agent) is skipped."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out
