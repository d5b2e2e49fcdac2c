"""Names operators type: nodes, clusters, pools. One rule, checked in one place."""

from __future__ import annotations

import re

from agent.errors import RackError

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


class BadName(RackError):
    """A name does not follow the naming rule."""


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is 1-32 lowercase letters, digits or inner hyphens.

    Names end up in file paths, zeroconf labels, interface names and ZeroMQ topics,
    so the rule is strict enough to be safe in all of them.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadName(
            f"{what} {name!r} is not valid: use 1-32 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return name
