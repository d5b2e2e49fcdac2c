"""The dispatch table: message type → the one handler that answers it, and who may send it.

Built once at start from the node's services; a second handler for the same type is a
bug and is refused then, not discovered when the message first arrives.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from agent.core.senders import Allow, refusal
from agent.errors import NotAllowed, RackError, UnexpectedMessage
from agent.node.service import Handler, Incoming, Service


class BadDispatchTable(RackError):
    """The services' handlers do not make a sound table (a bug, found at start)."""


class DuplicateHandler(BadDispatchTable):
    """Two services declare a handler for the same message type."""


class Dispatch:
    def __init__(self, services: Iterable[Service]) -> None:
        self._table: dict[type, tuple[str, Handler]] = {}
        for service in services:
            for handler in service.handlers():
                known = self._table.get(handler.kind)
                if known is not None:
                    raise DuplicateHandler(
                        f"{handler.kind.__name__} is answered by both the {known[0]} "
                        f"and the {service.name} service"
                    )
                if handler.allow is Allow.SPEAKER and handler.speaker is None:
                    raise BadDispatchTable(
                        f"the {service.name} service lets the speaker send "
                        f"{handler.kind.__name__} but does not say who speaks"
                    )
                self._table[handler.kind] = (service.name, handler)

    def handler_for(self, inc: Incoming, monitors: Collection[str], *, published: bool) -> Handler:
        """The handler for ``inc`` (``published``: heard on a subscription, else sent to our
        RPC socket); raises UnexpectedMessage or NotAllowed (typed refusals)."""
        entry = self._table.get(type(inc.msg))
        what = type(inc.msg).__name__
        if entry is None:
            raise UnexpectedMessage(f"this node does not answer {what}")
        handler = entry[1]
        if handler.published != published:
            where = "published on a subscription" if handler.published else "sent as a request"
            raise UnexpectedMessage(f"{what} is taken only {where}")
        speaks_for = handler.speaker(inc.msg) if handler.speaker is not None else None
        why = refusal(handler.allow, inc.sender, what, monitors=monitors, speaks_for=speaks_for)
        if why is not None:
            raise NotAllowed(why)
        return handler

    def table(self) -> list[tuple[str, str, Allow]]:
        """(message type, service, who may send it), for docs and tests."""
        return sorted((k.__name__, s, h.allow) for k, (s, h) in self._table.items())
