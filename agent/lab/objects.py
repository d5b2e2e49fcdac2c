"""Putting bytes into the lab rack from a script (the demo, the failover bench)."""

from __future__ import annotations

import asyncio
import io
import time

from agent.data.link import DataLink
from agent.data.objects import ObjectClient
from agent.ec import isal_lib
from agent.errors import LabError
from agent.lab.rack import Lab

MAP_WAIT_S = 5.0


def put_bytes(lab: Lab, pool: str, name: str, data: bytes) -> float:
    """Store ``data`` as ``pool/name``; returns the seconds the put took."""
    with lab.client() as client:
        cmap = client.map_with_pool(pool, MAP_WAIT_S)
        me = client.me
    if pool not in cmap.pools:
        raise LabError(f"pool {pool} is not in the map after {MAP_WAIT_S:g} s")

    isal_lib.install(quiet=True)

    async def put() -> float:
        link = DataLink(me)
        try:
            started = time.monotonic()
            await ObjectClient(link, lambda: cmap).put(pool, name, io.BytesIO(data))
            return time.monotonic() - started
        finally:
            link.close()

    return asyncio.run(put())
