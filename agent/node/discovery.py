"""zeroconf discovery: announce ourselves, browse for peers, admit only enrolled ones.

zeroconf is a hint, not a trust anchor. An announcement is admitted only when its
cluster id is ours, its node name is enrolled as a node, and the public key in its TXT
record is exactly the one enrolled under that name. Even an admitted announcement with a
forged address gains nothing: our SUB socket pins the enrolled key, so only the holder
of the node's secret key can complete the CURVE handshake.

zeroconf binds to the rack interface only (``bind`` in the node config), never to every
interface of the machine.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from agent import __version__
from agent.enrolment import Allowlist
from agent.ratelimit import RateLimitedLog
from agent.record import NodeRecord

SERVICE_TYPE = "_rackcloud._tcp.local."
RESOLVE_TIMEOUT_MS = 3000
"""How long to wait for an announced service's records."""
REJECT_LOG_EVERY_S = 30.0
"""A rejected announcement is logged at most this often (zeroconf repeats them)."""
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


def instance_name(cluster: str, node: str) -> str:
    return f"{cluster}-{node}.{SERVICE_TYPE}"


def txt_record(
    cluster: str, node: str, rpc_port: int, pub_port: int, public_key: str
) -> dict[str, str]:
    return {
        "cluster": cluster,
        "node": node,
        "rpc": str(rpc_port),
        "pub": str(pub_port),
        "key": public_key,
        "ver": __version__,
    }


def admit(
    props: Mapping[str, str | None], addresses: list[str], allowlist: Allowlist, me: str
) -> NodeRecord | Rejected:
    """Decide from an announcement alone whether it is a peer we should connect to.

    The record it returns carries the enrolled key (which the announcement matched), so
    connecting to it pins that key; its roles are learned later, from its heartbeats.
    """
    cluster, node, key = props.get("cluster"), props.get("node"), props.get("key")
    if cluster != allowlist.cluster:
        return Rejected(f"cluster {cluster!r} is not ours")
    if not node or node == me:
        return Rejected("no node name" if not node else "our own announcement")
    enrolled = allowlist.by_name(node)
    if enrolled is None or enrolled.kind != "node":
        return Rejected(f"node {node!r} is not enrolled")
    if key != enrolled.public:
        return Rejected(f"node {node!r} announced a key that is not the enrolled one")
    try:
        rpc, pub = int(props.get("rpc") or ""), int(props.get("pub") or "")
    except ValueError:
        return Rejected(f"node {node!r} announced bad ports")
    if not (0 < rpc < 65536 and 0 < pub < 65536):
        return Rejected(f"node {node!r} announced ports out of range")
    if not addresses:
        return Rejected(f"node {node!r} announced no IPv4 address")
    return NodeRecord(
        name=node, address=addresses[0], rpc_port=rpc, pub_port=pub, public_key=enrolled.public
    )


MAX_REFUSED = 256
"""Refused announcements remembered for a look again after an allowlist reload."""


class Discovery:
    """Announces this node and calls ``on_peer`` for every admitted announcement."""

    def __init__(
        self,
        me: NodeRecord,
        cluster: str,
        allowlist: Allowlist,
        on_peer: Callable[[NodeRecord], None],
    ) -> None:
        self.bind = me.address
        self._allowlist = allowlist
        self._refused: set[str] = set()
        """Announcements refused so far: looked at again when the allowlist grows."""
        self.node = me.name
        self.on_peer = on_peer
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            instance_name(cluster, me.name),
            addresses=[socket.inet_aton(me.address)],
            port=me.rpc_port,
            properties=txt_record(cluster, me.name, me.rpc_port, me.pub_port, me.public_key),
            server=f"{cluster}-{me.name}.local.",
        )
        self._azc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rejects = RateLimitedLog(log, per_seconds=REJECT_LOG_EVERY_S)

    @property
    def allowlist(self) -> Allowlist:
        return self._allowlist

    @allowlist.setter
    def allowlist(self, new: Allowlist) -> None:
        """A reloaded allowlist: announcements it refused may come from nodes enrolled
        since (``add_node.yml``), so each is resolved again."""
        self._allowlist = new
        if self._azc is None:
            return
        refused, self._refused = self._refused, set()
        for name in refused:
            self._spawn(self._resolve(self._azc.zeroconf, SERVICE_TYPE, name))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        self._azc = AsyncZeroconf(interfaces=[self.bind], ip_version=IPVersion.V4Only)
        await self._azc.async_register_service(self._info, allow_name_change=False)
        self._browser = AsyncServiceBrowser(
            self._azc.zeroconf, SERVICE_TYPE, handlers=[self._changed]
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._azc is not None:
            await self._azc.async_unregister_all_services()
            await self._azc.async_close()

    def _changed(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            self._spawn(self._resolve(zeroconf, service_type, name))

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        try:
            if not await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS):
                return
        except Exception:  # a peer's bad record must never take discovery down
            log.exception("could not resolve %s", name)
            return
        props = {
            (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): (
                v.decode("utf-8", "replace") if isinstance(v, bytes) else None
            )
            for k, v in info.properties.items()
        }
        verdict = admit(props, info.parsed_addresses(IPVersion.V4Only), self.allowlist, self.node)
        if isinstance(verdict, Rejected):
            if verdict.reason != "our own announcement":
                if len(self._refused) < MAX_REFUSED:  # strangers cannot grow it forever
                    self._refused.add(name)
                self._rejects.warning("ignored announcement %s: %s", name, verdict.reason, key=name)
            return
        self.on_peer(verdict)
