"""The operator's side of the wire: synchronous RPC and heartbeat subscription.

Requests fan out to every configured node at once and the first answer wins, so a dead
node costs nothing (no timeout before trying the next one). Each socket pins the
node's enrolled key: a client can only be answered by the node it meant to reach.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import msgspec
import zmq

from agent.clustermap import ClusterMap, Command, decode_map, encode_command
from agent.config import ClientConfig
from agent.enrolment import Allowlist
from agent.errors import KeyringError, NotFound, RemoteError, RpcTimeout, WireError
from agent.keys import Keypair, load_allowlist, load_keypair
from agent.node.security import make_curve_client
from agent.record import NodeRecord
from agent.wire import (
    HEARTBEAT_PREFIX,
    ClusterStatus,
    ErrorReply,
    Heartbeat,
    MapReply,
    MapRequest,
    Message,
    Payload,
    ProposeReply,
    ProposeRequest,
    StatusReply,
    StatusRequest,
    decode,
    encode,
    remote_error,
)

_rids = itertools.count(int(time.time() * 1000) % 1_000_000_000)


class Client:
    """A connection to the rack as configured by a client TOML file."""

    def __init__(self, conf: ClientConfig) -> None:
        self.conf = conf
        self.me: Keypair = load_keypair(conf.keys.secret)
        self.allowlist: Allowlist = load_allowlist(conf.keys.allowlist)
        if self.allowlist.cluster != conf.cluster:
            raise KeyringError(
                f"the allowlist is for cluster {self.allowlist.cluster}, "
                f"the client config says {conf.cluster}"
            )
        self.ctx = zmq.Context()

    def close(self) -> None:
        self.ctx.destroy(linger=0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def endpoints(self) -> list[NodeRecord]:
        """The configured nodes, each with the key the allowlist enrolls for it."""
        out = []
        for node in self.conf.nodes:
            key = self.allowlist.node_key(node.name)
            if key is None:
                raise KeyringError(f"node {node.name} in the client config is not in the allowlist")
            if node.public_key and node.public_key != key:
                raise KeyringError(
                    f"node {node.name} has another key in the client config than in the allowlist"
                )
            out.append(msgspec.structs.replace(node, public_key=key))
        return out

    def _request(
        self, endpoints: list[NodeRecord], frames: list[bytes], rid: int, timeout: float
    ) -> Message | None:
        """Send ``frames`` to each endpoint at once; the first reply with ``rid``, or None."""
        answer = self._request_payload(endpoints, frames, rid, timeout)
        return None if answer is None else answer[0]

    def _request_payload(
        self,
        endpoints: list[NodeRecord],
        frames: list[bytes],
        rid: int,
        timeout: float,
        accept: Callable[[Message, Payload], bool] | None = None,
    ) -> tuple[Message, Payload] | None:
        """The first reply with ``rid`` that ``accept`` takes; a reply it does not take is
        returned only once every node answered so (e.g. no node has a map yet)."""
        poller = zmq.Poller()
        passed: tuple[Message, Payload] | None = None
        answered = 0
        sockets = []
        try:
            for ep in endpoints:
                sock = self.ctx.socket(zmq.DEALER)
                sockets.append(sock)
                make_curve_client(sock, self.me, ep.public_key)
                sock.connect(ep.rpc_endpoint)
                sock.send_multipart(frames)
                poller.register(sock, zmq.POLLIN)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                for sock, _ in poller.poll(int(left * 1000)):
                    try:
                        reply, payload = decode(sock.recv_multipart())
                    except WireError:
                        continue
                    if getattr(reply, "rid", None) != rid:
                        continue
                    if isinstance(reply, ErrorReply):
                        raise remote_error(reply)
                    if accept is None or accept(reply, payload):
                        return reply, payload
                    passed, answered = (reply, payload), answered + 1
                    poller.unregister(sock)
                    if answered == len(sockets):
                        return passed
        finally:
            for sock in sockets:
                sock.close(linger=0)
        return passed

    def call_any(self, make: Callable[[int], Message], timeout: float | None = None) -> Message:
        """Send the request to every node at once; return the first answer."""
        timeout = self.conf.timeout if timeout is None else timeout
        rid = next(_rids)
        reply = self._request(self.endpoints(), encode(make(rid)), rid, timeout)
        if reply is None:
            tried = ", ".join(n.name for n in self.conf.nodes)
            raise RpcTimeout(
                f"no node answered within {timeout:g} s (tried {tried}); "
                "check that the agents run and that this client's key is enrolled"
            )
        return reply

    def call_one(
        self,
        ep: NodeRecord,
        msg: Message,
        rid: int,
        payload: tuple[bytes, ...] = (),
        timeout: float | None = None,
    ) -> Message:
        """One request to one node; raises RpcTimeout or RemoteError."""
        timeout = self.conf.timeout if timeout is None else timeout
        reply = self._request([ep], encode(msg, payload), rid, timeout)
        if reply is None:
            raise RpcTimeout(f"{ep.name} did not answer within {timeout:g} s")
        return reply

    @staticmethod
    def new_rid() -> int:
        return next(_rids)

    def call_one_payload(
        self, ep: NodeRecord, msg: Message, rid: int, timeout: float | None = None
    ) -> tuple[Message, Payload]:
        """Like :meth:`call_one`, with the reply's payload frames."""
        timeout = self.conf.timeout if timeout is None else timeout
        answer = self._request_payload([ep], encode(msg), rid, timeout)
        if answer is None:
            raise RpcTimeout(f"{ep.name} did not answer within {timeout:g} s")
        return answer

    def endpoint_of(self, name: str, status: ClusterStatus) -> NodeRecord:
        """The node ``name`` as the status lists it, with its enrolled key."""
        for ep in self._endpoints_of(status):
            if ep.name == name:
                return ep
        raise NotFound(f"node {name} is not in the rack's status")

    def propose(self, cmd: Command, timeout: float | None = None) -> ProposeReply:
        """Commit a cluster-map change through the first node that answers.

        Sent to one node at a time, never fanned out, so a change is proposed once.
        """
        timeout = self.conf.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(timeout)
            # the first node to answer takes it and forwards it to the leader over links
            # it already holds, which notice a dead leader faster than a new connection
            by_name = {ep.name: ep for ep in self._endpoints_of(status)}
            ep = by_name[status.answered_by]
            rid = next(_rids)
            left = max(0.5, deadline - time.monotonic())
            request = ProposeRequest(rid=rid, deadline_ms=int(left * 1000))
            try:
                reply = self.call_one(ep, request, rid, (encode_command(cmd),), left + 1.0)
            except RemoteError as exc:
                # no leader yet (an election is running): wait for one, within the timeout
                if not exc.retryable or time.monotonic() + 0.2 > deadline:
                    raise
                time.sleep(0.2)
                continue
            if not isinstance(reply, ProposeReply):
                raise WireError(f"expected a proposal reply, got {type(reply).__name__}")
            return reply

    def _endpoints_of(self, status: ClusterStatus) -> list[NodeRecord]:
        """The configured nodes, plus every node the status lists with an enrolled key."""
        out = {ep.name: ep for ep in self.endpoints()}
        for node in status.nodes:
            key = self.allowlist.node_key(node.name)
            if node.address and node.rpc_port and node.pub_port and key:
                out[node.name] = msgspec.structs.replace(node.as_record(), public_key=key)
        return list(out.values())

    def cluster_map(self, timeout: float | None = None) -> ClusterMap:
        """The cluster map, from the first node that has one (placement of objects)."""
        timeout = self.conf.timeout if timeout is None else timeout
        rid = next(_rids)
        answer = self._request_payload(
            self.endpoints(),
            encode(MapRequest(rid=rid, have_epoch=0)),
            rid,
            timeout,
            # a node that just started answers at once that it has no map: ask the others
            accept=lambda reply, payload: isinstance(reply, MapReply) and bool(payload),
        )
        if answer is None:
            raise RpcTimeout(f"no node answered with the cluster map within {timeout:g} s")
        reply, payload = answer
        if not isinstance(reply, MapReply) or not payload:
            raise WireError("the node has no cluster map yet; wait for the rack to form")
        try:
            return decode_map(payload[0])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise WireError(f"the cluster map does not decode: {exc}") from None

    def map_with_pool(self, pool: str | None, catch_up: float = 1.0) -> ClusterMap:
        """The map; if it lacks ``pool``, ask again for up to ``catch_up`` seconds: the node
        that answered first may not have the newest map yet (a pool created a moment ago)."""
        cmap = self.cluster_map()
        deadline = time.monotonic() + catch_up
        while pool is not None and pool not in cmap.pools and time.monotonic() < deadline:
            time.sleep(0.1)
            cmap = self.cluster_map()
        return cmap

    def status(self, timeout: float | None = None) -> ClusterStatus:
        reply = self.call_any(lambda rid: StatusRequest(rid=rid), timeout)
        if not isinstance(reply, StatusReply):
            raise WireError(f"expected a status reply, got {type(reply).__name__}")
        return reply.status

    def heartbeats(self, timeout: float | None = None) -> Iterator[Heartbeat]:
        """Subscribe to every node's heartbeats (learned from a status reply) and yield them.

        Yields nothing for ``timeout`` seconds of silence, then stops; ``None`` waits forever.
        """
        try:
            targets = {ep.name: ep for ep in self._endpoints_of(self.status())}
        except RpcTimeout:  # subscribe to the configured nodes; they may come up later
            targets = {ep.name: ep for ep in self.endpoints()}
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_PREFIX)
        try:
            for ep in targets.values():
                make_curve_client(sub, self.me, ep.public_key)
                sub.connect(ep.pub_endpoint)
            while True:
                if not sub.poll(None if timeout is None else int(timeout * 1000)):
                    return
                frames = sub.recv_multipart()
                try:
                    msg, _ = decode(frames[1:])
                except WireError:
                    continue
                if isinstance(msg, Heartbeat):
                    yield msg
        finally:
            sub.close(linger=0)
