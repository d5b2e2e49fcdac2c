"""``rack``: the operator's command line (contract: DESIGN §11).

Errors are one plain sentence on stderr and a non-zero exit; ``--json`` output never
mixes prose into stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from agent import __version__
from agent.cli import containers, drill, health
from agent.cli.objects import add_commands
from agent.cli.render import (
    console,
    containers_table,
    heartbeat_line,
    nodes_table,
    status_json,
    summary_line,
)
from agent.client import Client
from agent.clustermap import CreatePool
from agent.config import TimingConfig, load_client_config
from agent.errors import ConfigError, RackError
from agent.keys import create_keyring, enroll, load_allowlist, rotate
from agent.lab import Lab
from agent.names import check_name

DEFAULT_LAB_DIR = ".rack-lab"
EXIT_ERROR = 1
EXIT_USAGE = 2

err = Console(stderr=True, highlight=False)


def _conf_path(args: argparse.Namespace) -> Path:
    """--conf, then RACK_CONF, then the lab's client.toml in the current directory."""
    if args.conf:
        return Path(args.conf)
    if os.environ.get("RACK_CONF"):
        return Path(os.environ["RACK_CONF"])
    lab = Path(os.environ.get("RACK_LAB_DIR", DEFAULT_LAB_DIR)) / "client.toml"
    if lab.exists():
        return lab
    raise ConfigError(
        "no client config: pass --conf FILE or set RACK_CONF (the lab writes DIR/client.toml)"
    )


def _client(args: argparse.Namespace) -> Client:
    return Client(load_client_config(_conf_path(args)))


def _lab(args: argparse.Namespace) -> Lab:
    lab_dir = Path(args.dir or os.environ.get("RACK_LAB_DIR", DEFAULT_LAB_DIR))
    return Lab(lab_dir, progress=lambda msg: err.print(msg, style="dim"))


# ---- commands ------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.status()
    if args.json:
        print(json.dumps(status_json(status), indent=2))
    else:
        out = console()
        out.print(summary_line(status))
        out.print(nodes_table(status))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    seen = 0
    with _client(args) as client:
        for hb in client.heartbeats(timeout=args.timeout):
            if args.json:
                print(json.dumps(msgspec.to_builtins(hb)), flush=True)
            else:
                print(heartbeat_line(hb), flush=True)
            seen += 1
            if args.count and seen >= args.count:
                return 0
    if args.count and seen < args.count:
        raise RackError(
            f"heard {seen} of {args.count} heartbeats before {args.timeout:g} s of silence"
        )
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    with _client(args) as client:

        def frame() -> Group:
            try:
                status = client.status(timeout=args.interval * 2)
            except RackError as exc:
                if args.once:
                    raise
                return Group(Text(f"no answer: {exc}", style="bold red"))
            parts: list[RenderableType] = [
                summary_line(status),
                nodes_table(status, title=time.strftime("rack top  %H:%M:%S")),
            ]
            if status.containers:
                parts.append(containers_table(status))
            return Group(*parts)

        if args.once:
            console().print(frame())
            return 0
        with Live(frame(), refresh_per_second=4, screen=False) as live:
            try:
                while True:
                    time.sleep(args.interval)
                    live.update(frame())
            except KeyboardInterrupt:
                return 0


def cmd_pool_create(args: argparse.Namespace) -> int:
    cmd = CreatePool(
        name=check_name(args.name, "pool name"),
        k=args.k,
        m=args.m,
        plugin=args.plugin,
        pg_num=args.pg_num,
        failure_domain=args.failure_domain,
    )
    with _client(args) as client:
        reply = client.propose(cmd)
    if reply.refused:
        raise RackError(reply.refused)
    print(
        f"pool {args.name} created ({args.k}+{args.m}, {args.plugin}, {args.pg_num} PGs, "
        f"failure domain {args.failure_domain}); map epoch {reply.epoch}"
    )
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    nodes = [n for n in args.nodes.split(",") if n]
    clients = [c for c in args.clients.split(",") if c]
    allowlist = create_keyring(Path(args.dir), nodes, clients, cluster=args.cluster)
    print(
        f"cluster {allowlist.cluster}: {len(nodes)} node and {len(clients)} client keys "
        f"in {args.dir}"
    )
    return 0


def cmd_keys_add(args: argparse.Namespace) -> int:
    pair = enroll(Path(args.dir), args.name, "client" if args.client else "node")
    print(
        f"enrolled {args.name} ({pair.public}); "
        f"secret key in {Path(args.dir) / 'secret' / (args.name + '.key')}"
    )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    pair = rotate(Path(args.dir), args.name)
    print(f"rotated {args.name}: new key {pair.public}; restart its agent to use it")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    allowlist = load_allowlist(Path(args.dir) / "allowlist.toml")
    if args.json:
        print(json.dumps(msgspec.to_builtins(allowlist), indent=2))
        return 0
    print(f"cluster {allowlist.cluster}")
    for e in allowlist.keys:
        print(f"  {e.kind:6} {e.name:20} {e.public}")
    return 0


def cmd_lab_up(args: argparse.Namespace) -> int:
    lab = _lab(args)
    timing = msgspec.structs.replace(
        TimingConfig(),
        heartbeat_interval=args.heartbeat_interval,
        suspect_after=args.suspect_after,
        dead_after=args.dead_after,
    )
    seconds = lab.up(
        args.nodes,
        args.mode,
        timing,
        timeout=args.timeout,
        disks=args.disks,
        disk_mib=args.disk_mib,
        deploy=args.deploy,
    )
    st = lab.status_of("n1")
    mode = "netns" if any(n.address != "127.0.0.1" for n in st.nodes if n.address) else "loopback"
    if args.json:
        print(
            json.dumps(
                {
                    "nodes": args.nodes,
                    "mode": mode,
                    "converged_s": round(seconds, 3),
                    "client_conf": str(lab.client_conf),
                }
            )
        )
    else:
        print(
            f"lab rack of {args.nodes} nodes up ({mode} mode) in {seconds:.2f} s; "
            "the rack is formed in every node's view"
        )
        print(f"client config: {lab.client_conf}   (export RACK_CONF={lab.client_conf})")
    return 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    stopped = _lab(args).down()
    print(f"lab down: {stopped} agent process(es) stopped, namespaces and links removed")
    return 0


def cmd_lab_kill(args: argparse.Namespace) -> int:
    _lab(args).kill(args.node)
    print(f"pulled the power of {args.node}")
    return 0


def cmd_lab_boot(args: argparse.Namespace) -> int:
    _lab(args).boot(args.node)
    print(f"{args.node} booted and sees the rack")
    return 0


def cmd_lab_partition(args: argparse.Namespace) -> int:
    _lab(args).partition(args.node)
    print(f"{args.node} is cut off the rack network (its processes keep running)")
    return 0


def cmd_lab_heal(args: argparse.Namespace) -> int:
    _lab(args).partition(args.node, heal=True)
    print(f"{args.node} is back on the rack network")
    return 0


# ---- parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rack", description="Operate a Rackcloud rack.")
    p.add_argument(
        "--conf", help="client config (default: $RACK_CONF, then ./.rack-lab/client.toml)"
    )
    p.add_argument("--version", action="version", version=f"rack {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(
        name: str,
        fn: Callable[[argparse.Namespace], int],
        help_: str,
        parent: argparse._SubParsersAction[argparse.ArgumentParser] = sub,
    ) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    s = cmd("status", cmd_status, "show the cluster: quorum, nodes and their states")
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")

    w = cmd("watch", cmd_watch, "print every node's heartbeats as they arrive")
    w.add_argument("--json", action="store_true", help="one JSON object per line")
    w.add_argument("--count", type=int, default=0, help="stop after N heartbeats")
    w.add_argument(
        "--timeout", type=float, default=10.0, help="give up after this many seconds of silence"
    )

    t = cmd("top", cmd_top, "a live console of the rack")
    t.add_argument("--once", action="store_true", help="print one frame and exit (scripts, no TTY)")
    t.add_argument("--interval", type=float, default=0.5, help="refresh period in seconds")

    pool = sub.add_parser("pool", help="storage pools").add_subparsers(
        dest="pool_cmd", required=True, metavar="ACTION"
    )
    pc = cmd("create", cmd_pool_create, "create an erasure-coded pool", pool)
    pc.add_argument("name")
    pc.add_argument("--k", type=int, required=True, help="data shards")
    pc.add_argument("--m", type=int, required=True, help="parity shards (failures survived)")
    pc.add_argument("--plugin", default="rs", choices=["rs", "isal"])
    pc.add_argument("--pg-num", type=int, default=64)
    pc.add_argument("--failure-domain", default="host", choices=["host", "osd", "rack"])
    add_commands(sub, pool, lambda fn: lambda args: fn(args, lambda: _client(args)))
    containers.add_commands(sub, lambda fn: lambda args: fn(args, _client))
    drill.add_commands(sub, _lab)
    health.add_commands(sub, _client)

    keys = sub.add_parser("keys", help="the cluster keyring").add_subparsers(
        dest="keys_cmd", required=True, metavar="ACTION"
    )
    kc = cmd(
        "create",
        cmd_keys_create,
        "create a keyring: cluster id, node and client keypairs, allowlist",
        keys,
    )
    kc.add_argument("--dir", required=True, help="keyring directory (must not hold a keyring yet)")
    kc.add_argument("--nodes", required=True, help="comma-separated node names")
    kc.add_argument(
        "--clients", default="admin", help="comma-separated client names (default: admin)"
    )
    kc.add_argument("--cluster", help="cluster id (default: a random one)")
    ka = cmd("add", cmd_keys_add, "enroll one more node (or --client) in a keyring", keys)
    ka.add_argument("name")
    ka.add_argument("--dir", required=True)
    ka.add_argument("--client", action="store_true", help="enroll an operator client, not a node")
    kr = cmd("rotate", cmd_keys_rotate, "give an enrolled node or client a new keypair", keys)
    kr.add_argument("name")
    kr.add_argument("--dir", required=True)
    kl = cmd("list", cmd_keys_list, "list the enrolled keys", keys)
    kl.add_argument("--dir", required=True)
    kl.add_argument("--json", action="store_true")

    lab = sub.add_parser("lab", help="a lab rack on this machine").add_subparsers(
        dest="lab_cmd", required=True, metavar="ACTION"
    )
    up = cmd("up", cmd_lab_up, "build a lab rack and wait until it is formed", lab)
    up.add_argument("--nodes", type=int, default=5)
    up.add_argument("--mode", choices=["auto", "netns", "loopback"], default="auto")
    up.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the rack to converge"
    )
    defaults = TimingConfig()
    up.add_argument("--heartbeat-interval", type=float, default=defaults.heartbeat_interval)
    up.add_argument("--suspect-after", type=float, default=defaults.suspect_after)
    up.add_argument("--dead-after", type=float, default=defaults.dead_after)
    up.add_argument("--disks", type=int, default=2, help="disks (OSDs) per node")
    up.add_argument(
        "--disk-mib",
        type=int,
        default=None,
        help="make every disk a tmpfs of this size (root), so a disk can be filled",
    )
    up.add_argument(
        "--deploy",
        choices=["ansible", "direct"],
        default="ansible",
        help="deploy with ansible-playbook playbooks/site.yml (default), or start agents directly",
    )
    up.add_argument("--json", action="store_true")
    for name, fn, help_ in (
        ("down", cmd_lab_down, "stop every agent and remove namespaces, veths and the bridge"),
        ("kill", cmd_lab_kill, "pull a node's power: SIGKILL its processes, link down"),
        ("boot", cmd_lab_boot, "power a killed node back on"),
        (
            "partition",
            cmd_lab_partition,
            "cut a node's link; its processes keep running (netns mode)",
        ),
        ("heal", cmd_lab_heal, "restore a partitioned node's link"),
    ):
        sp = cmd(name, fn, help_, lab)
        if name != "down":
            sp.add_argument("node")
    for sp in lab.choices.values():
        sp.add_argument(
            "--dir", help=f"lab directory (default: $RACK_LAB_DIR or {DEFAULT_LAB_DIR})"
        )
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; what follows the first ``--`` is a container's command (``ct run``),
    taken verbatim (argparse's own ``--`` handling does not reach into sub-commands)."""
    parser = build_parser()
    if "--" not in argv:
        return parser.parse_args(argv)
    cut = argv.index("--")
    args = parser.parse_args(argv[:cut])
    if not hasattr(args, "cmd"):
        parser.error("only 'rack ct run' takes a command after --")
    args.cmd = [*args.cmd, *argv[cut + 1 :]]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        code: int = args.fn(args)
        return code
    except RackError as exc:
        err.print(f"rack: {exc}", style="bold red", markup=False, soft_wrap=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
