"""The node: owns the transport, the task group and the lifecycle, and composes services.

Every message that arrives is decoded here, attributed to the enrolled key that sent it,
looked up in the dispatch table and checked against the handler's rule of who may send
it; only then does a service see it. Whatever a peer sends, the node answers with a
typed refusal or drops it with a rate-limited log line, and never crashes on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from agent.config import NodeConfig
from agent.core.senders import Sender
from agent.enrolment import Allowlist
from agent.errors import RackError, RpcTimeout, Unreachable
from agent.node.dispatch import Dispatch
from agent.node.env import NodeEnv, PeerSource
from agent.node.service import Incoming, Reply
from agent.ratelimit import RateLimitedLog
from agent.record import NodeRecord
from agent.services import NodeServices, compose
from agent.wire import (
    MAP_TOPIC,
    ErrorCode,
    ErrorReply,
    Heartbeat,
    MapUpdate,
    Message,
    Payload,
    decode,
    encode,
    error_reply,
    heartbeat_topic,
    remote_error,
)

log = logging.getLogger("agent.node")
Answered = Callable[[Message, Payload], None]
"""Where a request's answer goes: the transport's reply route, or a local caller."""

STOP_GRACE_S = 2.0
"""How long a stopping node waits for zeroconf to withdraw its announcement."""
ALLOWLIST_POLL_S = 1.0
"""How often the allowlist file is looked at (a stat) for nodes enrolled since."""
BAD_INPUT_LOG_EVERY_S = 10.0
"""The same complaint about what one peer sends is logged at most this often."""


class _Stopped(Exception):
    pass


class Node:
    """One node's agent; ``run()`` until ``stop()``. Every peer input is distrusted."""

    def __init__(self, conf: NodeConfig, public_key: str, allowlist: Allowlist, env: NodeEnv):
        self.conf = conf
        self.me: NodeRecord = conf.record(public_key)
        self.allowlist = allowlist
        self.env = env
        self.clock = env.clock
        self.rng = env.rng
        self.bad_input = RateLimitedLog(
            log, per_seconds=BAD_INPUT_LOG_EVERY_S, clock=env.clock.monotonic
        )
        self.monitors = frozenset(conf.monitors)
        self._peers: dict[str, NodeRecord] = {}
        self._waiting: dict[int, tuple[str, asyncio.Future[Reply]]] = {}
        self._rids = itertools.count(self.rng.getrandbits(40) + 1)
        self._tg: asyncio.TaskGroup | None = None
        self._source: PeerSource | None = None
        self._stopping = asyncio.Event()
        self.services: NodeServices = compose(self, env)
        self.dispatch = Dispatch(self.services.all())

    # ---- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        source: PeerSource | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self.env.transport.start(self, self._task)
                for service in self.services.all():
                    for loop in service.loops():
                        tg.create_task(
                            loop(), name=f"{self.me.name}.{service.name}.{loop.__name__}"
                        )
                if self.env.peer_source is not None:
                    source = self.env.peer_source(
                        self.me, self.conf.cluster, self.allowlist, self.admit
                    )
                    await source.start()
                    self._source = source
                if self.env.allowlist_file is not None:
                    tg.create_task(self._watch_allowlist(), name=f"{self.me.name}.allowlist")
                log.info(
                    "node %s of cluster %s up on %s (rpc %d, pub %d), roles %s",
                    self.me.name,
                    self.conf.cluster,
                    self.me.address,
                    self.me.rpc_port,
                    self.me.pub_port,
                    ",".join(self.conf.roles),
                )
                await self._stopping.wait()
                raise _Stopped
        except* _Stopped:
            pass
        finally:
            self._tg = None
            self._source = None
            if source is not None:
                with contextlib.suppress(Exception):
                    async with self.clock.timeout(STOP_GRACE_S):
                        await source.stop()
            for _, fut in self._waiting.values():
                fut.cancel()
            for service in self.services.all():
                service.close()
            self.env.transport.close()
            log.info("node %s stopped", self.me.name)

    def stop(self) -> None:
        self._stopping.set()

    async def _watch_allowlist(self) -> None:
        """Adopt a changed allowlist file: nodes enrolled later are admitted, no restart."""
        assert self.env.allowlist_file is not None
        while True:
            await self.clock.sleep(ALLOWLIST_POLL_S)
            try:
                new = self.env.allowlist_file()
            except (RackError, OSError) as exc:
                log.error("%s", exc)
                continue
            if new is not None:
                self.replace_allowlist(new)

    def replace_allowlist(self, new: Allowlist) -> None:
        added = sorted({e.name for e in new.keys} - {e.name for e in self.allowlist.keys})
        self.allowlist = new
        if self._source is not None:
            self._source.allowlist = new
        log.info("allowlist reloaded: %d keys (new: %s)", len(new.keys), ", ".join(added) or "-")

    def _task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._tg is not None, "the node is not running"
        return self._tg.create_task(coro)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._tg is None:  # stopping: a late message's work is dropped, as on a dead node
            coro.close()
            return
        task = self._task(self._guarded(coro))
        # a task cancelled before its first step never runs ``coro``: close it, quietly
        task.add_done_callback(lambda _t: coro.close())

    async def _guarded(self, coro: Awaitable[None]) -> None:
        try:
            await coro
        except Exception:  # a bug in one request must not take the node down
            log.exception("a task of node %s failed", self.me.name)

    # ---- peers -------------------------------------------------------------------------

    @property
    def peers(self) -> Mapping[str, NodeRecord]:
        return self._peers

    def admit(self, peer: NodeRecord) -> None:
        """Connect to an admitted peer (or re-point on a move); its key is pinned."""
        old = self._peers.get(peer.name)
        if old is not None and old.endpoints() == peer.endpoints():
            return
        self.env.transport.connect(peer)
        self._peers[peer.name] = peer
        log.info(
            "admitted peer %s at %s (rpc %d, pub %d)",
            peer.name,
            peer.address,
            peer.rpc_port,
            peer.pub_port,
        )

    # ---- sending -----------------------------------------------------------------------

    def send(self, peer: str, msg: Message, payload: Payload = ()) -> bool:
        if peer == self.me.name:
            sender = Sender(self.me.name, "node")
            asyncio.get_running_loop().call_soon(
                functools.partial(
                    self._dispatch, Incoming(msg, payload, sender), None, published=False
                )
            )
            return True
        return self.env.transport.send(peer, encode(msg, payload))

    def publish(self, topic: bytes, msg: Message, payload: Payload = ()) -> None:
        self.env.transport.publish([topic, *encode(msg, payload)])

    async def call(
        self, peer: str, build: Callable[[int], Message], timeout: float, payload: Payload = ()
    ) -> Reply:
        rid = next(self._rids)
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = (peer, fut)
        try:
            if peer == self.me.name:
                self._call_self(build(rid), payload, fut)
            elif not self.env.transport.send(peer, encode(build(rid), payload)):
                raise Unreachable(f"{peer} is not reachable from {self.me.name}")
            async with self.clock.timeout(timeout):
                reply = await fut
        except TimeoutError:
            raise RpcTimeout(f"{peer} did not answer within {timeout:g} s") from None
        finally:
            self._waiting.pop(rid, None)
        if isinstance(reply[0], ErrorReply):
            raise remote_error(reply[0])
        return reply

    def _call_self(self, msg: Message, payload: Payload, fut: asyncio.Future[Reply]) -> None:
        """A request to ourselves (a monitor asking all monitors) is answered locally."""

        def answered(reply: Message, out: Payload) -> None:
            if not fut.done():
                fut.set_result((reply, out))

        inc = Incoming(msg, payload, Sender(self.me.name, "node"))
        asyncio.get_running_loop().call_soon(
            functools.partial(self._dispatch, inc, answered, published=False)
        )

    # ---- receiving (the Inbound side of the transport) ---------------------------------

    def on_request(self, route: bytes, sender_key: str, frames: list[bytes]) -> None:
        enrolled = self.allowlist.by_public(sender_key)
        if enrolled is None:  # ZAP admitted it, so the allowlist changed under us: no answer
            self.bad_input.warning("ignored a request from unenrolled key %s", sender_key)
            return
        try:
            msg, payload = decode(frames)
        except RackError as exc:
            self.bad_input.warning(
                "refused a malformed request from %s: %s", enrolled.name, exc, key=enrolled.name
            )
            self.env.transport.reply(route, encode(error_reply(0, exc)))
            return
        sender = Sender(enrolled.name, enrolled.kind)

        def answered(reply: Message, out: Payload) -> None:
            self.env.transport.reply(route, encode(reply, out))

        self._dispatch(Incoming(msg, payload, sender), answered, published=False)

    def on_published(self, peer: str, frames: list[bytes]) -> None:
        try:
            msg, payload = decode(frames[1:])
        except RackError as exc:
            self.bad_input.warning("dropped a malformed message from %s: %s", peer, exc, key=peer)
            return
        topic = (
            heartbeat_topic(msg.node.name)
            if isinstance(msg, Heartbeat)
            else MAP_TOPIC
            if isinstance(msg, MapUpdate)
            else None
        )
        if topic is None or frames[0] != topic:
            self.bad_input.warning(
                "dropped a %s published by %s on topic %r",
                type(msg).__name__,
                peer,
                frames[0][:32],
                key=peer,
            )
            return
        self._dispatch(Incoming(msg, payload, Sender(peer, "node")), None, published=True)

    def on_reply(self, peer: str, frames: list[bytes]) -> None:
        try:
            reply, payload = decode(frames)
        except RackError as exc:
            log.debug("dropped a malformed reply from %s: %s", peer, exc)
            return
        waiting = self._waiting.get(getattr(reply, "rid", -1))
        if waiting is not None and waiting[0] == peer and not waiting[1].done():
            waiting[1].set_result((reply, payload))

    def _dispatch(self, inc: Incoming, reply: Answered | None, *, published: bool) -> None:
        """Look up, check and run the handler; refusals are typed replies on requests."""
        rid = getattr(inc.msg, "rid", 0)
        what = type(inc.msg).__name__
        try:
            handler = self.dispatch.handler_for(inc, self.monitors, published=published)
            answer = handler.answer(inc)
        except RackError as exc:
            self.bad_input.warning(
                "refused a %s from %s: %s",
                what,
                inc.sender.name,
                exc,
                key=f"{inc.sender.name}:{what}",
            )
            if reply is not None:
                reply(error_reply(rid, exc), ())
            return
        except Exception:
            log.exception("handling a %s from %s failed", type(inc.msg).__name__, inc.sender.name)
            if reply is not None:
                bug = ErrorReply(rid=rid, code=ErrorCode.INTERNAL, message="the node hit a bug")
                reply(bug, ())
            return
        if inspect.isawaitable(answer):
            self.spawn(self._answer_later(reply, rid, answer))
        elif answer is not None and reply is not None:
            reply(*answer)

    async def _answer_later(
        self, reply_to: Answered | None, rid: int, answer: Awaitable[Reply]
    ) -> None:
        try:
            reply = await answer
        except RackError as exc:
            reply = (error_reply(rid, exc), ())
        except Exception:
            log.exception("answering request %d failed", rid)
            reply = (ErrorReply(rid=rid, code=ErrorCode.INTERNAL, message="the node hit a bug"), ())
        if reply_to is not None:
            reply_to(*reply)
