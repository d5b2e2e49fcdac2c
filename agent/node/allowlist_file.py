"""The allowlist file, watched: a node enrolled later is admitted without restarting anyone.

``add_node.yml`` enrols the new node on the controller and ships the grown allowlist to
every host; each agent notices the new file within a second and admits the new key
(ZAP, discovery, the monitors' map). A file that names another cluster, or no longer
enrols this node with its own key, is refused with one log line and the old list kept:
a wrong copy must not lock a running node out of its own rack.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.enrolment import Allowlist
from agent.errors import KeyringError
from agent.keys import load_allowlist

POLL_S = 1.0
"""How often the file is looked at (a stat; the load happens only when it changed)."""


class AllowlistFile:
    """Yields a new, checked allowlist when the file changed since the last look."""

    def __init__(self, path: str | os.PathLike[str], current: Allowlist, node: str) -> None:
        self.path = Path(path)
        self.current = current
        self.node = node
        self._seen: tuple[int, int, int] | None = None
        """None: the first look loads the file and compares it with ``current``, so a
        file replaced between the agent's load and this watcher's start is not missed."""

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> Allowlist | None:
        """The new allowlist if the file changed and is acceptable; None if unchanged.

        Raises ``KeyringError`` (once per change) when the new file is refused.
        """
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return None
        self._seen = stamp
        new = load_allowlist(self.path)
        if new.cluster != self.current.cluster:
            raise KeyringError(
                f"the new allowlist {self.path} is for cluster {new.cluster}, not "
                f"{self.current.cluster}: kept the old one"
            )
        if new.node_key(self.node) != self.current.node_key(self.node):
            raise KeyringError(
                f"the new allowlist {self.path} does not enrol node {self.node} with its "
                "key: kept the old one"
            )
        if new == self.current:
            return None
        self.current = new
        return new
