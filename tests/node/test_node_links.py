from __future__ import annotations

import asyncio
import gc
from typing import Any

import zmq
import zmq.asyncio

from agent.node.links import send_nowait


def test_send_nowait_reports_a_drop_and_leaves_no_lost_exception() -> None:
    problems: list[dict[str, Any]] = []

    async def main() -> tuple[bool, bool]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: problems.append(ctx))
        ctx = zmq.asyncio.Context()
        try:
            nowhere = ctx.socket(zmq.DEALER)
            nowhere.setsockopt(zmq.IMMEDIATE, 1)  # no connection: ZeroMQ would block
            nowhere.connect("tcp://127.0.0.1:9")
            pub = ctx.socket(zmq.PUB)  # PUB never blocks: it drops for absent subscribers
            pub.bind("tcp://127.0.0.1:*")
            dropped, published = send_nowait(nowhere, [b"x"]), send_nowait(pub, [b"x"])
            await asyncio.sleep(0.05)
            gc.collect()
            await asyncio.sleep(0)
            return dropped, published
        finally:
            ctx.destroy(linger=0)

    assert asyncio.run(main()) == (False, True)
    gc.collect()
    assert problems == []
