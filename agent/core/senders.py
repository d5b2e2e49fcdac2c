"""Who may send what: the rule every message's handler declares, checked in one place.

The node knows the sender of every message by its key: the ZAP handler names the key
behind each request, and each peer's subscription is pinned to that peer's key. A handler
then says who may send its message; this module says yes, or why not in plain words.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from agent.enrolment import KeyKind


class Allow(StrEnum):
    ANY = "any enrolled key"
    NODES = "nodes only"
    MONITORS = "monitors only"
    SPEAKER = "the node the message speaks for"


@dataclass(frozen=True, slots=True)
class Sender:
    """The enrolled identity behind a message (from its key, never from its contents)."""

    name: str
    kind: KeyKind


def refusal(
    allow: Allow,
    sender: Sender,
    what: str,
    *,
    monitors: Collection[str],
    speaks_for: str | None = None,
) -> str | None:
    """None if ``sender`` may send the message ``what``, else why not (one sentence)."""
    who = f"{sender.kind} {sender.name}"
    if allow is Allow.ANY:
        return None
    if sender.kind != "node":
        return f"{who} may not send {what}: {allow}"
    if allow is Allow.NODES:
        return None
    if allow is Allow.MONITORS:
        return None if sender.name in monitors else f"{who} may not send {what}: {allow}"
    if speaks_for == sender.name:
        return None
    return f"{who} may not send {what} that speaks for {speaks_for or 'nobody'}"
