"""``rack-agent``: load the config and keys, build the real environment, run the node."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from agent.config import NodeConfig, load_node_config
from agent.data.link import DataLink
from agent.ec import isal_lib
from agent.enrolment import Allowlist
from agent.errors import RackError
from agent.keys import Keypair, load_allowlist, load_keypair
from agent.node.allowlist_file import AllowlistFile
from agent.node.checkconfig import check_node_config, summary
from agent.node.clock import SystemClock
from agent.node.compute import production_compute
from agent.node.dataplane import ZmqDataServer
from agent.node.discovery import Discovery
from agent.node.env import NodeEnv
from agent.node.events import JsonlEvents
from agent.node.executor import OrderedExecutor
from agent.node.node import Node
from agent.node.zmq_transport import ZmqTransport
from agent.raft.storage import DiskStorage
from agent.runtime import address as addresses
from agent.runtime import cleanup_scope
from agent.services.supervisor import scope_of, state_dir
from agent.wire import DiskSummary

log = logging.getLogger("agent")


def disk_usage(path: str) -> DiskSummary:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return DiskSummary(path=path, total_bytes=0, free_bytes=0, ok=False)
    return DiskSummary(path=path, total_bytes=usage.total, free_bytes=usage.free)


def production_env(conf: NodeConfig, keypair: Keypair, allowlist: Allowlist) -> NodeEnv:
    """The real world: system clock, ZeroMQ, zeroconf (if enabled), files, a disk thread."""
    transport = ZmqTransport(keypair, allowlist, conf.bind, conf.rpc_port, conf.pub_port)
    return NodeEnv(
        clock=SystemClock(),
        rng=random.Random(int.from_bytes(os.urandom(16), "big")),
        transport=transport,
        data_server=ZmqDataServer(
            lambda: transport.ctx, keypair, f"tcp://{conf.bind}:{conf.data_port}"
        ),
        data_link=lambda: DataLink(keypair),
        peer_source=Discovery if conf.discovery.enabled else None,
        raft_store=lambda: DiskStorage(Path(conf.data_dir) / "raft"),
        executor=OrderedExecutor("raft-disk"),
        disk_usage=disk_usage,
        compute=production_compute(conf) if "compute" in conf.roles else None,
        events=JsonlEvents(Path(conf.data_dir) / "events.jsonl", conf.node, time.monotonic),
        allowlist_file=_watched_allowlist(conf, allowlist, transport),
    )


def _watched_allowlist(
    conf: NodeConfig, allowlist: Allowlist, transport: ZmqTransport
) -> Callable[[], Allowlist | None]:
    """The allowlist file, watched; a new list also goes to the ZAP handler at once."""
    watched = AllowlistFile(conf.keys.allowlist, allowlist, conf.node)

    def changed() -> Allowlist | None:
        new = watched.changed()
        if new is not None:
            transport.allowlist = new
        return new

    return changed


def clean_leftovers(conf: NodeConfig) -> None:
    """What an earlier run of this agent left (it crashed): its containers, and their
    service addresses on the rack interface, which have moved on to other nodes by now."""
    leftovers = cleanup_scope(scope_of(conf))
    if leftovers:
        print(f"rack-agent: killed {leftovers} container(s) left by an earlier run")
    pool, dev = conf.compute.service_addresses, conf.compute.interface
    if pool and dev:
        keep = {ipaddress.IPv4Address(conf.bind)}
        stale = addresses.flush(dev, ipaddress.IPv4Network(pool), keep)
        if stale:
            print(f"rack-agent: removed stale service address(es) {', '.join(stale)}")


def load(path: str) -> tuple[NodeConfig, Keypair, Allowlist]:
    conf = load_node_config(path)
    keypair = load_keypair(conf.keys.secret)
    allowlist = load_allowlist(conf.keys.allowlist)
    if allowlist.cluster != conf.cluster:
        raise RackError(
            f"the allowlist is for cluster {allowlist.cluster}, the config says {conf.cluster}"
        )
    if allowlist.node_key(conf.node) != keypair.public:
        raise RackError(f"node {conf.node} is not enrolled with this key in the allowlist")
    return conf, keypair, allowlist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rack-agent", description="Rackcloud node agent")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--conf", help="node config (TOML)")
    which.add_argument(
        "--check-config", metavar="FILE", help="validate FILE as the agent would, start nothing"
    )
    args = parser.parse_args(argv)
    if args.check_config:
        try:
            checked = check_node_config(args.check_config, load)
        except (RackError, OSError) as exc:
            print(f"rack-agent: {exc}", file=sys.stderr)
            return 2
        print(summary(args.check_config, checked))
        return 0
    try:
        conf, keypair, allowlist = load(args.conf)
        os.makedirs(conf.data_dir, exist_ok=True)
        os.makedirs(state_dir(conf), exist_ok=True)
        if "compute" in conf.roles:
            clean_leftovers(conf)
    except (RackError, OSError) as exc:
        print(f"rack-agent: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=conf.log_level.upper(),
        format=f"%(asctime)s {conf.node} %(levelname)s %(name)s: %(message)s",
    )
    isal_lib.install()  # the codec's kernel: chosen, and logged, once at start
    return asyncio.run(_serve(conf, keypair, allowlist))


async def _serve(conf: NodeConfig, keypair: Keypair, allowlist: Allowlist) -> int:
    env = production_env(conf, keypair, allowlist)
    try:
        node = Node(conf, keypair.public, allowlist, env)
    except RackError as exc:
        log.error("cannot start: %s", exc)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.stop)
    failed: list[str] = []
    try:
        await node.run()
    except* (zmq.ZMQError, RackError) as group:
        failed = [str(e) for e in group.exceptions]
    finally:
        env.executor.close()
    if failed:
        log.error("cannot serve: %s", "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
