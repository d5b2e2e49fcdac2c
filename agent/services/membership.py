"""Membership: heartbeats out, heartbeats in, the failure detector, reports to the monitors.

Every ``heartbeat_interval`` the node publishes a heartbeat describing itself (other
services add their fields); every heartbeat it hears on a peer's subscription feeds the
pure :class:`~agent.core.failure.FailureDetector`; every ``report_interval`` it tells
each monitor which peers its detector finds dead and which alive, for the vote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import msgspec

from agent import __version__
from agent.core.failure import FailureDetector, PeerAlive, PeerDead, PeerState, PeerSuspect
from agent.core.senders import Allow
from agent.ec.kernels import default_kernel
from agent.node.clock import every
from agent.node.events import EventSink, no_events
from agent.node.service import Handler, Incoming, NodeContext, Service
from agent.wire import DiskSummary, HealthReport, Heartbeat, heartbeat_topic

HeartbeatListener = Callable[[Heartbeat], None]
LAG_PROBE_S = 0.05
"""How often the event loop's lateness is sampled."""


class Membership(Service):
    name = "membership"
    log = logging.getLogger("agent.membership")

    def __init__(
        self,
        ctx: NodeContext,
        disk_usage: Callable[[str], DiskSummary],
        events: EventSink = no_events,
    ) -> None:
        self.events = events
        self.ctx = ctx
        self.timing = ctx.conf.timing
        self.disk_usage = disk_usage
        self.incarnation = ctx.rng.getrandbits(63)
        self.started = ctx.clock.monotonic()
        self.seq = 0
        self.report_seq = 0
        self.detector = FailureDetector(self.timing.suspect_after, self.timing.dead_after)
        self.beats: dict[str, Heartbeat] = {}
        """The latest heartbeat heard from each peer."""
        self.published: Heartbeat | None = None
        """The last heartbeat this node published (its disks measured then)."""
        self.listeners: list[HeartbeatListener] = []
        self.contributors: list[Service] = []
        self._lag = 0.0
        self._reporting = False
        """Reports go out only once the report loop runs (the node is up and serving)."""
        self._report_now = False
        """Services whose heartbeat fields go into ours."""

    def handlers(self) -> Sequence[Handler]:
        return (
            Handler(
                Heartbeat, Allow.SPEAKER, self._heard, speaker=lambda m: m.node.name, published=True
            ),
        )

    def loops(self) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
        return (self._publish, self._detect, self._report, self._watch_lag)

    async def _watch_lag(self) -> None:
        """Measure how late the event loop wakes up (the heartbeat carries the worst)."""
        clock = self.ctx.clock
        while True:
            due = clock.monotonic() + LAG_PROBE_S
            await clock.sleep(LAG_PROBE_S)
            self._lag = max(self._lag, clock.monotonic() - due)

    # ---- what this node says -----------------------------------------------------------

    def describe_self(self) -> Heartbeat:
        """This node as its heartbeats describe it, at the current sequence number."""
        clock = self.ctx.clock
        fields: dict[str, object] = {}
        for service in self.contributors:
            fields.update(service.heartbeat_fields())
        if "disks" not in fields:  # the OSD service reports its disks; else measure them here
            fields["disks"] = tuple(self.disk_usage(path) for path in self.ctx.conf.disks)
        hb = Heartbeat(
            loop_lag_s=round(self._lag, 4),
            cluster=self.ctx.conf.cluster,
            node=self.ctx.me,
            incarnation=self.incarnation,
            seq=self.seq,
            uptime_s=round(clock.monotonic() - self.started, 3),
            sent_at=clock.wall(),
            version=__version__,
            ec_kernel=default_kernel().name,
        )
        return msgspec.structs.replace(hb, **fields)

    async def _publish(self) -> None:
        topic = heartbeat_topic(self.ctx.me.name)

        def beat() -> None:
            self.seq += 1
            self.published = self.describe_self()
            self._lag = 0.0
            self.ctx.publish(topic, self.published)

        await every(self.ctx.clock, self.timing.heartbeat_interval, beat)

    # ---- what this node hears ----------------------------------------------------------

    def _heard(self, inc: Incoming) -> None:
        hb: Heartbeat = inc.msg
        if hb.cluster != self.ctx.conf.cluster:
            self.ctx.bad_input.warning(
                "dropped a heartbeat of cluster %s from %s", hb.cluster, hb.node.name
            )
            return
        now = self.ctx.clock.monotonic()
        self._log(self.detector.observe(hb.node.name, hb.incarnation, hb.seq, now))
        self.beats[hb.node.name] = hb
        for listener in self.listeners:
            listener(hb)

    def hears(self, name: str) -> bool:
        return self.detector.state(name) is PeerState.ALIVE

    async def _detect(self) -> None:
        clock = self.ctx.clock
        await every(
            clock,
            self.timing.detector_tick,
            lambda: self._log(self.detector.tick(clock.monotonic())),
        )

    def _log(self, events: Sequence[PeerAlive | PeerSuspect | PeerDead]) -> None:
        for ev in events:
            if isinstance(ev, PeerAlive):
                again = " after a restart" if ev.rebooted else ""
                self.log.info("peer %s is up%s (incarnation %x)", ev.node, again, ev.incarnation)
            elif isinstance(ev, PeerSuspect):
                self.log.warning("peer %s is suspect: silent for %.2f s", ev.node, ev.silent_for)
            else:
                self.log.warning("peer %s is dead: silent for %.2f s", ev.node, ev.silent_for)
                self.events("peer_dead", subject=ev.node)
                self._report_now = True
        if self._report_now and self._reporting:
            self._report_now = False
            self._send_report()  # the vote should not wait for the next report interval

    # ---- what this node tells the monitors ---------------------------------------------

    def health(self) -> HealthReport:
        self.report_seq += 1
        views = self.detector.views(self.ctx.clock.monotonic())
        return HealthReport(
            reporter=self.ctx.me.name,
            incarnation=self.incarnation,
            seq=self.report_seq,
            dead=tuple(v.node for v in views if v.state is PeerState.DEAD),
            alive={v.node: v.incarnation for v in views if v.state is PeerState.ALIVE},
        )

    def _send_report(self) -> None:
        health = self.health()
        for monitor in self.ctx.conf.monitors:
            self.ctx.send(monitor, health)

    async def _report(self) -> None:
        self._reporting = True
        await every(
            self.ctx.clock,
            self.timing.report_interval,
            self._send_report,
            first=self.timing.report_interval,
        )
