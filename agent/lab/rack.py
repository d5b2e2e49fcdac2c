"""The lab rack: N agents on one machine, in network namespaces or on 127.0.0.1.

As root each node is a network namespace with its own address on a private bridge
(multicast snooping off, so mDNS crosses it; no uplink, so nothing leaves the machine).
Without root the agents share 127.0.0.1 and differ by port. ``kill`` pulls the power
(SIGKILL every process of the node, and its link down in netns mode); ``partition``
takes the link down only, so the node keeps running on the wrong side of a cut.

``rack lab up`` deploys the agents with ``playbooks/site.yml`` (``agent.lab.deployment``);
``deploy="direct"`` starts them from this process's package, for tests of the agents.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from agent.client import Client
from agent.config import ClientConfig, KeysConfig, TimingConfig, dump_toml, load_client_config
from agent.core.formed import forming
from agent.errors import LabError, RackError
from agent.keys import create_keyring
from agent.lab import netns, state
from agent.lab.deploy import require_playbooks
from agent.lab.deployment import Deployment
from agent.lab.flaky import Impairments
from agent.lab.state import LabNode, LabState, Mode
from agent.record import NodeRecord
from agent.wire import ClusterStatus

CLIENT = "admin"
DEFAULT_TIMING = TimingConfig()
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def choose_mode(requested: str) -> Mode:
    reason = netns.available()
    if requested == "auto":
        return "netns" if reason is None else "loopback"
    if requested == "netns":
        if reason:
            raise LabError(reason)
        return "netns"
    if requested == "loopback":
        return "loopback"
    raise LabError(f"unknown lab mode {requested!r}: use auto, netns or loopback")


def monitor_names(nodes: list[str]) -> list[str]:
    """Three monitors (the first three nodes), or one in a rack of fewer than three."""
    return nodes[:3] if len(nodes) >= 3 else nodes[:1]


LAB_STORAGE = {
    "reserve_bytes": 1024 * 1024,
    "gc_interval": 5.0,
    "gc_superseded_after": 10.0,
    "gc_orphan_after": 600.0,
}
"""The lab collects replaced versions within seconds, so it can be watched (production:
minutes); orphans wait 10 minutes, longer than any put a lab runs."""


def _free_port_block(count: int) -> int:
    """A base port with ``count`` consecutive free ports on 127.0.0.1."""
    for base in range(17100, 60000, 100):
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise LabError("no block of free ports on 127.0.0.1 for the lab")


class Lab(Impairments, Deployment):
    """Operations on the lab rack kept in ``lab_dir``."""

    def __init__(self, lab_dir: Path, progress: Progress = _quiet) -> None:
        self.dir = lab_dir.resolve()
        self.progress = progress

    # ---- paths -------------------------------------------------------------------------

    @property
    def client_conf(self) -> Path:
        return self.dir / "client.toml"

    def node_dir(self, name: str) -> Path:
        return self.dir / "nodes" / name

    # ---- up ----------------------------------------------------------------------------

    def up(
        self,
        nodes: int,
        mode: str = "auto",
        timing: TimingConfig = DEFAULT_TIMING,
        *,
        timeout: float = 60.0,
        disks: int = 2,
        disk_mib: int | None = None,
        deploy: str = "direct",
    ) -> float:
        """Build the rack; returns seconds until it was formed in every node's view.

        Every node gets ``disks`` disks, directories of the lab's filesystem; with
        ``disk_mib`` (root only) each is a tmpfs of that size, so a disk can be filled.
        ``deploy="ansible"`` deploys the agents with ``playbooks/site.yml`` (what ``rack
        lab up`` does); ``"direct"`` starts them from this process's package, which is
        what most tests use, since they exercise the agents and not their deployment.
        """
        if deploy not in ("direct", "ansible"):
            raise LabError(f"unknown deployment {deploy!r}: use ansible or direct")
        if deploy == "ansible":
            require_playbooks()
        if not 1 <= nodes <= 32:
            raise LabError(f"a lab rack has 1 to 32 nodes, not {nodes}")
        if not 0 <= disks <= 8:
            raise LabError(f"a lab node has 0 to 8 disks, not {disks}")
        if disk_mib is not None and os.geteuid() != 0:
            raise LabError("small disks (--disk-mib) are tmpfs mounts and need root")
        existing = state.load(self.dir)
        if existing is not None:
            raise LabError(f"a lab is already up in {self.dir}; run 'rack lab down' first")
        chosen = choose_mode(mode)
        started = time.monotonic()
        st = LabState(
            lab_id=os.urandom(2).hex(),
            mode=chosen,
            disks=disks,
            deployed="ansible" if deploy == "ansible" else "direct",
        )
        for sub in ("keys", "nodes", "releases"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        state.save(self.dir, st)  # before anything exists, so 'down' can always clean up
        try:
            self._build(st, nodes, timing, disk_mib)
            how = "deployed" if deploy == "ansible" else "started"
            self.progress(
                f"{how} {nodes} agents ({chosen} mode); waiting for them to see each other"
            )
            self.wait_converged(timeout)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.down()
            if isinstance(exc, RackError):
                raise LabError(f"lab up failed and was cleaned up: {exc}") from None
            raise
        return time.monotonic() - started

    def _build(self, st: LabState, count: int, timing: TimingConfig, disk_mib: int | None) -> None:
        names = [f"n{i}" for i in range(1, count + 1)]
        if st.deployed == "direct":  # Ansible's keys role makes it otherwise
            create_keyring(self.dir / "keys", names, [CLIENT], cluster=f"lab-{st.lab_id}")
        if st.mode == "netns":
            subnet = netns.free_subnet()
            st.bridge, st.subnet = netns.bridge_name(st.lab_id), str(subnet)
            state.save(self.dir, st)
            st.service_net = str(list(subnet.subnets(new_prefix=26))[-1])  # .192/26
            gateway = next(iter(subnet.hosts()))
            netns.create_bridge(st.bridge, ipaddress.IPv4Interface(f"{gateway}/{subnet.prefixlen}"))
            for i, name in enumerate(names, start=1):
                self._add_netns_node(st, name, i)
        else:
            base = _free_port_block(3 * count)
            st.service_net = f"127.77.{(base // 3) % 250 + 1}.0/24"
            for i, name in enumerate(names):
                st.nodes.append(LabNode(record=loopback_record(name, base + 3 * i)))
        state.save(self.dir, st)
        for node in st.nodes:
            self._make_disks(st, node, disk_mib)
        write_client_config(self.dir, st)
        if st.deployed == "ansible":
            self.deploy(st, timing, LAB_STORAGE, monitor_names([n.name for n in st.nodes]))
            return
        for node in st.nodes:
            write_node_config(self.dir, st, node, timing)
            self._start(st, node)
        state.save(self.dir, st)

    def disk_dirs(self, st: LabState, name: str) -> list[Path]:
        return disk_dirs(self.dir, st, name)

    def _make_disks(self, st: LabState, node: LabNode, disk_mib: int | None) -> None:
        for disk in self.disk_dirs(st, node.name):
            disk.mkdir(parents=True, exist_ok=True)
            if disk_mib is not None:
                st.mounts.append(str(disk))
                state.save(self.dir, st)
                netns.mount_tmpfs(disk, disk_mib)

    def _start(self, st: LabState, node: LabNode) -> None:
        if st.deployed == "ansible":
            self._start_deployed(st, node)
            return
        home = self.node_dir(node.name)
        cmd = [sys.executable, "-m", "agent.node.main", "--conf", str(home / "agent.toml")]
        if st.mode == "netns":
            assert node.netns
            cmd = ["ip", "netns", "exec", node.netns, *cmd]
        with open(home / "agent.log", "ab") as logf:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node.pid = proc.pid

    # ---- observing ---------------------------------------------------------------------

    def client(self, only: str | None = None) -> Client:
        conf = load_client_config(self.client_conf)
        if only is not None:
            conf = msgspec.structs.replace(
                conf, nodes=tuple(n for n in conf.nodes if n.name == only)
            )
        return Client(conf)

    def status_of(self, name: str, timeout: float = 1.0) -> ClusterStatus:
        with self.client(only=name) as c:
            return c.status(timeout=timeout)

    def wait_converged(self, timeout: float, among: list[str] | None = None) -> None:
        """Return once the rack is formed (``agent.core.formed``) in every running node's
        view, with every running node up; or raise, saying what is missing, on timeout."""
        st = state.require(self.dir)
        names = among or [n.name for n in st.nodes if n.pid is not None]
        deadline = time.monotonic() + timeout
        last = "no node answered yet"
        while time.monotonic() < deadline:
            self._check_alive(st)
            lagging = []
            for name in names:
                try:
                    view = self.status_of(name, timeout=0.5)
                except RackError:
                    lagging.append(f"{name} does not answer")
                    continue
                lagging += forming(view, expected=names)
            if not lagging:
                return
            last = "; ".join(lagging)
            time.sleep(0.05)
        raise LabError(f"the rack did not converge within {timeout:g} s: {last}")

    def _check_alive(self, st: LabState) -> None:
        for node in st.nodes:
            if node.pid is not None and not _running(node.pid):
                tail = _tail(self.node_dir(node.name) / "agent.log")
                raise LabError(f"agent {node.name} exited: {tail}")

    # ---- faults ------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """Pull the power: SIGKILL every process of the node; in netns mode its link goes down."""
        st = state.require(self.dir)
        node = st.node(name)
        if st.mode == "netns":
            assert node.veth
            netns.set_link(node.veth, up=False)
        _signal(self._pids(st, node), signal.SIGKILL)
        if node.pid is not None:
            _reap(node.pid)
        node.pid = None
        state.save(self.dir, st)

    def processes_of(self, name: str) -> list[int]:
        """Every running process of node ``name`` (its namespace's, or its agent's)."""
        st = state.require(self.dir)
        return [p for p in self._pids(st, st.node(name)) if _running(p)]

    def _pids(self, st: LabState, node: LabNode) -> list[int]:
        """Every process of the node: its namespace's, or its agent's and its containers'
        (each checked for pid reuse)."""
        if st.mode == "netns":
            return netns.pids(node.netns) if node.netns and netns.exists(node.netns) else []
        home = self.node_dir(node.name)
        out = [node.pid] if node.pid is not None and _is_our_agent(node.pid, home) else []
        return out + _container_pids(home / "data" / "containers", node.name)

    def boot(self, name: str, timeout: float = 30.0, wait: bool = True) -> None:
        """Power the node back on; returns once the rack is formed again in every running
        node's view (or at once with ``wait=False``, e.g. for a monitor that needs its
        peers)."""
        st = state.require(self.dir)
        node = st.node(name)
        if node.pid is not None and _running(node.pid):
            raise LabError(f"node {name} is already running (pid {node.pid})")
        if st.mode == "netns":
            assert node.veth
            netns.set_link(node.veth, up=True)
        self._start(st, node)
        state.save(self.dir, st)
        if wait:
            self.wait_converged(timeout)

    def partition(self, name: str, heal: bool = False) -> None:
        """Cut (or restore) the node's link; its processes keep running."""
        st = state.require(self.dir)
        node = st.node(name)
        if st.mode != "netns":
            raise LabError(
                "partition and heal need netns mode (run 'rack lab up' as root); "
                "in loopback mode all nodes share 127.0.0.1"
            )
        assert node.veth
        netns.set_link(node.veth, up=heal)

    # ---- down --------------------------------------------------------------------------

    def down(self, grace: float = 3.0) -> int:
        """Stop every agent (SIGTERM, SIGKILL after ``grace``) and remove every namespace,
        veth and bridge of the lab; returns how many processes were stopped."""
        self.restore_all()  # impaired links first: their forwarders, pairs and offloads
        if (st := state.load(self.dir)) is None:
            return 0
        pids = [pid for node in st.nodes for pid in self._pids(st, node)]
        _signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(_running(p) for p in pids) and time.monotonic() < deadline:
            for pid in pids:
                _reap(pid, tries=1)
            time.sleep(0.05)
        _signal([p for p in pids if _running(p)], signal.SIGKILL)
        for pid in pids:
            _reap(pid)
        for mount in st.mounts:
            netns.unmount(Path(mount))
        if st.mode == "netns":
            netns.remove_all(st.lab_id)
        state.state_path(self.dir).unlink(missing_ok=True)
        return len(pids)


def write_node_config(lab_dir: Path, st: LabState, node: LabNode, timing: TimingConfig) -> None:
    """A directly started node's config (Ansible's agent role writes it otherwise)."""
    home = lab_dir / "nodes" / node.name
    monitors = monitor_names([n.name for n in st.nodes])
    conf = {
        "cluster": f"lab-{st.lab_id}",
        "node": node.name,
        "bind": node.record.address,
        "rpc_port": node.record.rpc_port,
        "pub_port": node.record.pub_port,
        "data_port": node.record.data_port,
        "roles": (["mon"] if node.name in monitors else []) + ["osd", "compute"],
        "monitors": monitors,
        "data_dir": str(home / "data"),
        "disks": [str(d) for d in disk_dirs(lab_dir, st, node.name)],
        "storage": LAB_STORAGE,
        "keys": {
            "secret": str(lab_dir / "keys" / "secret" / f"{node.name}.key"),
            "allowlist": str(lab_dir / "keys" / "allowlist.toml"),
        },
        "timing": msgspec.to_builtins(timing),
        "compute": {
            "interface": "eth0" if st.mode == "netns" else "",
            "service_addresses": st.service_net or "",
            "client_conf": str(lab_dir / "client.toml"),
        },
    }
    (home / "agent.toml").write_text(dump_toml(conf), encoding="utf-8")


def write_client_config(lab_dir: Path, st: LabState) -> None:
    conf = ClientConfig(
        cluster=f"lab-{st.lab_id}",
        keys=KeysConfig(
            secret=str(lab_dir / "keys" / "secret" / f"{CLIENT}.key"),
            allowlist=str(lab_dir / "keys" / "allowlist.toml"),
        ),
        nodes=tuple(n.record for n in st.nodes),
    )
    (lab_dir / "client.toml").write_text(dump_toml(msgspec.to_builtins(conf)), encoding="utf-8")


def disk_dirs(lab_dir: Path, st: LabState, name: str) -> list[Path]:
    return [lab_dir / "nodes" / name / f"disk{i}" for i in range(st.disks)]


def loopback_record(name: str, base: int) -> NodeRecord:
    return NodeRecord(
        name=name, address="127.0.0.1", rpc_port=base, pub_port=base + 1, data_port=base + 2
    )


def _signal(pids: list[int], sig: signal.Signals) -> None:
    """Signal each process and, where it leads one (containers do), its process group."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first); [] if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _running(pid: int) -> bool:
    fields = proc_stat(pid)
    return bool(fields) and fields[0] != "Z"


def _reap(pid: int, tries: int = 50) -> None:
    """Collect the exit status if the agent is our own child (lab up, then kill in one process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        for _ in range(tries):
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.01)


def _is_our_agent(pid: int, home: Path) -> bool:
    """Guard against a recycled pid: only signal a process running this node's config."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    confs = (home / "agent.toml", home / "etc" / "agent.toml")  # direct, or by Ansible
    return any(str(conf).encode() + b"\0" in cmdline for conf in confs)


def _container_pids(state_dir: Path, node: str) -> list[int]:
    """The container process groups a loopback node started (their pidfiles), each checked
    to carry that node's ``RACK_NODE`` so a recycled pid is never signalled."""
    out = []
    for pidfile in sorted(state_dir.glob("*.pid")):
        try:
            pid = int(pidfile.read_text(encoding="ascii").strip())
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        # a process group's environment, or the launcher's JSON argument, names the node
        if f"RACK_NODE={node}".encode() in environ or f'"RACK_NODE": "{node}"'.encode() in cmdline:
            out.append(pid)
    return out


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"
