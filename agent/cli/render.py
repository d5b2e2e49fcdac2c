"""Turning cluster views into tables and JSON; shared by ``status``, ``top`` and ``watch``."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.wire import ClusterStatus, Heartbeat, NodeStatus

STATE_STYLE = {"up": "green", "suspect": "yellow", "down": "bold red", "out": "red"}


def console() -> Console:
    """A stdout console; when piped (scripts, ``--once``) it is wide enough not to truncate."""
    con = Console(highlight=False)
    if not con.is_terminal:
        con = Console(highlight=False, width=max(con.width, 120))
    return con


def status_json(status: ClusterStatus) -> dict[str, Any]:
    """The ``rack status --json`` object of DESIGN §11 (plus a few extra node fields)."""
    data: dict[str, Any] = msgspec.to_builtins(status)
    data.pop("answered_by", None)
    return data


def human_bytes(n: int) -> str:
    """Compact binary units (1.5K, 79.5G): tables are narrow."""
    size = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024:
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}P"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _disks(node: NodeStatus) -> str:
    if not node.osds:
        return "-"
    free = sum(d.free_bytes for d in node.osds)
    total = sum(d.total_bytes for d in node.osds)
    used = sum(d.used_bytes for d in node.osds)
    bad = sum(1 for d in node.osds if not d.ok)
    errors = sum(d.errors for d in node.osds)
    text = f"{len(node.osds)}: {human_bytes(used)} used, {human_bytes(free)}/{human_bytes(total)}"
    notes = [f"{bad} refused"] if bad else []
    notes += [f"{errors} errors"] if errors else []
    return text + (f" ({', '.join(notes)})" if notes else "")


def _roles(node: NodeStatus, leader: str | None) -> Text:
    text = Text(",".join(node.roles) or "-")
    if node.name == leader:
        text.append(" (leader)", style="bold cyan")
    return text


def _table(title: str | None) -> Table:
    """The one table style of status, top and ct ls."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def nodes_table(status: ClusterStatus, title: str | None = None) -> Table:
    table = _table(title)
    for col, justify in (
        ("node", "left"),
        ("state", "left"),
        ("address", "left"),
        ("roles", "left"),
        ("heartbeat", "right"),
        ("uptime", "right"),
        ("disks: used, free/size", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    leader = status.quorum.leader if status.quorum else None
    for node in status.nodes:
        age = node.last_heartbeat_age_s
        table.add_row(
            node.name,
            Text(node.state, style=STATE_STYLE.get(node.state, "")),
            node.address or "-",
            _roles(node, leader),
            "-" if age is None else f"{age:.2f}s",
            human_duration(node.uptime_s),
            _disks(node),
        )
    return table


CONTAINER_STYLE = {
    "running": "green",
    "starting": "yellow",
    "stopping": "yellow",
    "pending": "yellow",
    "fenced": "bold red",
    "failed": "red",
    "exited": "dim",
    "stopped": "dim",
}


def containers_table(status: ClusterStatus, title: str | None = None) -> Table:
    table = _table(title)
    for col in ("container", "state", "node", "address", "gen", "restarts", "uptime", "volume"):
        table.add_column(col, no_wrap=True)
    for c in status.containers:
        state = Text(c.state, style=CONTAINER_STYLE.get(c.state, ""))
        if c.reason:
            state.append(f" ({c.reason})", style="dim")
        table.add_row(
            c.name,
            state,
            c.node or "-",
            c.address or "-",
            str(c.generation),
            str(c.restarts),
            human_duration(c.uptime_s),
            c.volume or "-",
        )
    return table


def summary_line(status: ClusterStatus) -> Text:
    counts: dict[str, int] = {}
    for n in status.nodes:
        counts[n.state] = counts.get(n.state, 0) + 1
    text = Text(f"cluster {status.cluster}  epoch {status.epoch}  ")
    if status.quorum is None:
        text.append("quorum: no monitors yet  ", style="dim")
    else:
        q = status.quorum
        text.append(f"leader {q.leader or 'none'} term {q.term} ({len(q.members)} monitors)  ")
    for state in ("up", "suspect", "down", "out"):
        if counts.get(state):
            text.append(f"{counts[state]} {state}  ", style=STATE_STYLE[state])
    text.append(f"(view of {status.answered_by})", style="dim")
    if status.formed:
        text.append("\nrack formed", style="green")
    else:
        text.append("\nforming: " + "; ".join(status.forming), style="yellow")
    return text


def heartbeat_line(hb: Heartbeat) -> str:
    stamp = (
        time.strftime("%H:%M:%S", time.localtime(hb.sent_at))
        + f".{int(hb.sent_at * 1000) % 1000:03d}"
    )
    return (
        f"{stamp} hb.{hb.node.name} inc={hb.incarnation:x} seq={hb.seq} epoch={hb.epoch} "
        f"roles={','.join(hb.node.roles)} uptime={hb.uptime_s:.1f}s disks={len(hb.disks)}"
        + "".join(f" ct:{c.name}/g{c.generation}={c.state}" for c in hb.containers)
    )
