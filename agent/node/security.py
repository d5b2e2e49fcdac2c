"""CURVE on every socket, and a ZAP handler that admits only enrolled keys.

CURVE alone encrypts but lets any key in; the ZAP handler is what makes the allowlist
bite, so an agent starts it before it binds a single socket. Client sockets (DEALER,
SUB) pin the server's enrolled public key, so they cannot be talked to by an impostor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from agent.enrolment import Allowlist
from agent.keys import Keypair
from agent.ratelimit import RateLimitedLog
from agent.wire import MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES

ZAP_DOMAIN = "rackcloud"
REFUSED_KEY_LOG_EVERY_S = 10.0
log = logging.getLogger(__name__)


class _AllowlistProvider:
    """ZAP credentials callback: admits a CURVE key only if the allowlist enrolls it."""

    def __init__(self, allowlist: Callable[[], Allowlist]) -> None:
        self.allowlist = allowlist
        self._rejects = RateLimitedLog(log, per_seconds=REFUSED_KEY_LOG_EVERY_S)

    def callback(self, domain: str, key: bytes) -> bool:
        public = key.decode("ascii", "replace")
        if self.allowlist().by_public(public) is not None:
            return True
        self._rejects.warning("refused a connection from unenrolled key %s", public, key=public)
        return False


def start_authenticator(
    ctx: zmq.asyncio.Context, allowlist: Callable[[], Allowlist]
) -> AsyncioAuthenticator:
    """Start the context's ZAP handler; sockets of ``ctx`` are then checked against it.

    ``allowlist`` is asked on every handshake, so a reloaded allowlist applies at once."""
    auth = AsyncioAuthenticator(ctx, log=logging.getLogger("agent.zap"))
    auth.start()
    auth.configure_curve_callback(
        domain=ZAP_DOMAIN, credentials_provider=_AllowlistProvider(allowlist)
    )
    return auth


def make_curve_server(sock: zmq.Socket[Any], me: Keypair) -> None:
    sock.curve_server = True
    sock.curve_publickey = me.public.encode()
    sock.curve_secretkey = me.secret.encode()
    sock.zap_domain = ZAP_DOMAIN.encode()
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_PAYLOAD_BYTES + MAX_HEADER_BYTES)
    sock.linger = 0


def make_curve_client(sock: zmq.Socket[Any], me: Keypair, server_public: str) -> None:
    """Set our keys and pin the server's key; takes effect for the next ``connect``."""
    sock.curve_publickey = me.public.encode()
    sock.curve_secretkey = me.secret.encode()
    sock.curve_serverkey = server_public.encode()
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_PAYLOAD_BYTES + MAX_HEADER_BYTES)
    sock.linger = 0
