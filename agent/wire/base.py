"""The base of every wire message: frozen, keyword-only, tagged by a ``type`` field."""

from __future__ import annotations

import msgspec


class Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """A message of the Rackcloud protocol; subclasses name their tag (``type``)."""
