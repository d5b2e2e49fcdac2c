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


MAX_OBJECT_NAME_BYTES = 1024


def check_object_name(name: str) -> str:
    """Return ``name`` if it can name an object: 1-1024 bytes of UTF-8 without NUL.

    An object name is a key, never a path: slashes, dots and spaces are ordinary
    characters, and the store hashes the name to find its files.
    """
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadName(f"object name {name!r} is not valid UTF-8") from None
    if not 1 <= size <= MAX_OBJECT_NAME_BYTES:
        raise BadName(
            f"an object name is 1 to {MAX_OBJECT_NAME_BYTES} bytes of UTF-8, not {size} bytes"
        )
    if "\0" in name:
        raise BadName("an object name may not contain a NUL character")
    return name


def split_object_path(path: str) -> tuple[str, str]:
    """``POOL/NAME`` into a checked pool name and a checked object name."""
    pool, sep, name = path.partition("/")
    if not sep:
        raise BadName(f"{path!r} names no object: write POOL/NAME")
    return check_name(pool, "pool name"), check_object_name(name)
