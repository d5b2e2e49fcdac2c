"""The supervisor's world in production: the runtime, service addresses, the watchdog."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from collections.abc import Callable

from agent.config import NodeConfig
from agent.node.env import ComputeEnv
from agent.runtime import address as addresses
from agent.runtime.process import Runtime

log = logging.getLogger("agent.supervisor")


class ThreadWatchdog:
    """Fires once the armed deadline (``time.monotonic``) passes, from its own thread.

    The event loop can stall (a long GC, two busy cores); this thread only waits on a
    condition, so it kills the containers on time even then. Re-arming moves the deadline;
    after firing it waits to be armed again.
    """

    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lease-watchdog", daemon=True)
        self._thread.start()

    def arm(self, deadline: float) -> None:
        with self._cond:
            self._deadline = deadline
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._deadline is None:
                    self._cond.wait()
                if self._closed:
                    return
                assert self._deadline is not None
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue  # re-read: re-armed, closed, or due now
                self._deadline = None
            try:
                self._fire()
            except Exception:  # the watchdog must outlive a bug in what it fires
                log.exception("the lease watchdog's kill failed")


class HostAddresses:
    """Service addresses on this node's rack interface (netns) or on loopback (127.x)."""

    def __init__(self, interface: str, network: ipaddress.IPv4Network | None) -> None:
        self.interface = interface or None
        self.prefixlen = network.prefixlen if network is not None else 32

    def _address(self, ip: str) -> addresses.ServiceAddress:
        return addresses.ServiceAddress(
            ip=ipaddress.IPv4Address(ip), prefixlen=self.prefixlen, dev=self.interface
        )

    async def add(self, address: str) -> None:
        await asyncio.to_thread(addresses.add, self._address(address))

    async def remove(self, address: str) -> None:
        await asyncio.to_thread(addresses.remove, self._address(address))


def production_compute(conf: NodeConfig) -> ComputeEnv:
    net = conf.compute.service_addresses
    return ComputeEnv(
        runtime=Runtime(log=log),
        addresses=HostAddresses(
            conf.compute.interface, ipaddress.IPv4Network(net) if net else None
        ),
        watchdog=ThreadWatchdog,
    )
