"""``rack ct``: run, list, stop, start, remove and read the logs of containers (DESIGN §11).

A spec is checked by the map itself (:mod:`agent.clustermap.containers`), so a bad one
fails at ``rack ct run`` with the map's sentence. ``run``, ``stop`` and ``start`` then
wait (``--wait`` seconds, 0 not to) until the rack reports the container as asked, or
say plainly what it is doing instead (pending, and why).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from agent.cli.render import console, containers_table
from agent.client import Client
from agent.clustermap import ContainerSpec, PutContainer, RemoveContainer, SetContainerWant
from agent.errors import BadRequest, NotFound, RackError
from agent.names import check_name
from agent.wire import ContainerStatus, LogReply, LogRequest

WAIT_S = 10.0
POLL_S = 0.2
MIB = 1024 * 1024

ClientOf = Callable[[argparse.Namespace], Client]


def _find(client: Client, name: str) -> ContainerStatus:
    for c in client.status().containers:
        if c.name == name:
            return c
    raise NotFound(f"there is no container {name!r}")


def _wait_for(client: Client, name: str, states: set[str], seconds: float) -> ContainerStatus:
    """Poll until the container is in one of ``states``; the last view otherwise."""
    deadline = time.monotonic() + seconds
    current = _find(client, name)
    while current.state not in states and time.monotonic() < deadline:
        time.sleep(POLL_S)
        current = _find(client, name)
    return current


def _describe(c: ContainerStatus) -> str:
    where = f"on {c.node}" if c.node else "on no node"
    text = f"container {c.name} is {c.state} {where}"
    if c.address:
        text += f" at {c.address}"
    text += f" (generation {c.generation})"
    if c.reason:
        text += f": {c.reason}"
    return text


def _env(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not key.replace("_", "").isalnum():
            raise BadRequest(f"--env {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def cmd_run(args: argparse.Namespace, client_of: ClientOf) -> int:
    command = list(args.cmd)
    if not command:
        raise BadRequest("give the container's command after --, e.g. rack ct run web -- CMD")
    if args.memory is not None and args.memory <= 0:
        raise BadRequest(f"--memory must be a positive number of MiB, not {args.memory}")
    if args.cpus is not None and args.cpus <= 0:
        raise BadRequest(f"--cpus must be positive, not {args.cpus}")
    spec = ContainerSpec(
        name=check_name(args.name, "container name"),
        command=tuple(command),
        env=_env(args.env),
        volume=args.volume,
        address=args.address,
        cpu_millis=round(args.cpus * 1000) if args.cpus else 0,
        memory_bytes=args.memory * MIB if args.memory else 0,
        restart=args.restart,
        anti_affinity=args.anti_affinity,
    )
    with client_of(args) as client:
        reply = client.propose(PutContainer(spec=spec))
        if reply.refused:
            raise RackError(reply.refused)
        status = _wait_for(client, args.name, {"running", "pending", "failed"}, args.wait)
    print(_describe(status))
    return 1 if status.state == "failed" else 0


def cmd_ls(args: argparse.Namespace, client_of: ClientOf) -> int:
    with client_of(args) as client:
        status = client.status()
    if args.json:
        print(json.dumps(msgspec.to_builtins(status.containers), indent=2))
    elif not status.containers:
        print("no containers")
    else:
        console().print(containers_table(status))
    return 0


def _want(args: argparse.Namespace, client_of: ClientOf, want: str, states: set[str]) -> int:
    with client_of(args) as client:
        _find(client, args.name)
        reply = client.propose(SetContainerWant(name=args.name, want=want))  # type: ignore[arg-type]
        if reply.refused:
            raise RackError(reply.refused)
        status = _wait_for(client, args.name, states, args.wait)
    print(_describe(status))
    return 0


def cmd_stop(args: argparse.Namespace, client_of: ClientOf) -> int:
    return _want(args, client_of, "stopped", {"stopped"})


def cmd_start(args: argparse.Namespace, client_of: ClientOf) -> int:
    return _want(args, client_of, "running", {"running", "pending", "failed"})


def cmd_rm(args: argparse.Namespace, client_of: ClientOf) -> int:
    with client_of(args) as client:
        _find(client, args.name)
        reply = client.propose(RemoveContainer(name=args.name))
        if reply.refused:
            raise RackError(reply.refused)
    print(f"container {args.name} removed; its node stops it and gives up its address")
    return 0


def cmd_logs(args: argparse.Namespace, client_of: ClientOf) -> int:
    with client_of(args) as client:
        status = client.status()
        found = [c for c in status.containers if c.name == args.name]
        if not found:
            raise NotFound(f"there is no container {args.name!r}")
        node = args.node or found[0].node
        if node is None:
            raise NotFound(f"container {args.name} runs on no node, so it has no log to show")
        rid = client.new_rid()
        reply, payload = client.call_one_payload(
            client.endpoint_of(node, status),
            LogRequest(rid=rid, container=args.name, max_bytes=args.bytes),
            rid,
        )
    if not isinstance(reply, LogReply) or not reply.found:
        raise NotFound(f"node {node} has no log of container {args.name}")
    sys.stdout.buffer.write(bytes(payload[0]) if payload else b"")
    sys.stdout.flush()
    return 0


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    bind: Callable[[Callable[[argparse.Namespace, ClientOf], int]], Callable[..., int]],
) -> None:
    ct = sub.add_parser("ct", help="containers").add_subparsers(
        dest="ct_cmd", required=True, metavar="ACTION"
    )

    def cmd(name: str, fn: Callable[[argparse.Namespace, ClientOf], int], help_: str) -> Any:
        sp = ct.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=bind(fn))
        return sp

    run = cmd("run", cmd_run, "run a container on the rack (it moves when its node dies)")
    run.add_argument("name")
    run.add_argument("--address", help="its service address (default: one of the rack's pool)")
    run.add_argument("--volume", help="POOL/PREFIX where it keeps its state")
    run.add_argument("--memory", type=int, help="memory limit in MiB")
    run.add_argument("--cpus", type=float, help="CPU limit (1.5 = one and a half CPUs)")
    run.add_argument("--restart", choices=["always", "on-failure", "never"], default="always")
    run.add_argument("--env", action="append", default=[], metavar="K=V")
    run.add_argument("--anti-affinity", metavar="LABEL", help="never share a node with LABEL")
    run.add_argument("--wait", type=float, default=WAIT_S, help="seconds to wait until it runs")
    run.add_argument("cmd", nargs="*", metavar="-- CMD", help="the command, after --")
    ls = cmd("ls", cmd_ls, "list the containers: node, address, generation, state")
    ls.add_argument("--json", action="store_true")
    for name, fn, help_ in (
        ("stop", cmd_stop, "stop a container (it stays placed; start runs it again)"),
        ("start", cmd_start, "start a stopped container"),
        ("rm", cmd_rm, "remove a container"),
    ):
        sp = cmd(name, fn, help_)
        sp.add_argument("name")
        if name != "rm":
            sp.add_argument("--wait", type=float, default=WAIT_S)
    logs = cmd("logs", cmd_logs, "print the tail of a container's log")
    logs.add_argument("name")
    logs.add_argument("--bytes", type=int, default=64 * 1024)
    logs.add_argument("--node", help="read it from this node (default: where it runs)")
