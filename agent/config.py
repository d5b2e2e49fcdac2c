"""Node and client configuration: TOML files loaded into frozen, validated types.

Ansible (and the lab) write these files; the agent and the CLI only read them. Any
problem is reported as one :class:`~agent.errors.ConfigError` sentence that names the
file, the field and what is wrong, so an operator can fix it without reading code.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import msgspec

from agent.errors import ConfigError
from agent.names import BadName, check_name
from agent.record import (
    DEFAULT_DATA_PORT,
    DEFAULT_PUB_PORT,
    DEFAULT_RPC_PORT,
    NodeRecord,
    NodeRole,
)

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Config structs reject unknown keys: a typo must not silently become a default."""


class KeysConfig(_Strict, frozen=True, kw_only=True):
    secret: str
    """Path of this node's (or client's) key file, mode 0600."""
    allowlist: str
    """Path of the cluster allowlist: every enrolled public key."""


class TimingConfig(_Strict, frozen=True, kw_only=True):
    """Every interval of the node, in seconds of its monotonic clock.

    The whole-node simulation runs with these defaults, and the bound it checks on how
    fast a dead node is voted down is derived from them (docs/simulation.md).
    """

    heartbeat_interval: Seconds = 0.2
    suspect_after: Seconds = 0.6
    dead_after: Seconds = 1.0
    detector_tick: Seconds = 0.1
    """How often the failure detector looks at the silence of each peer."""
    report_interval: Seconds = 0.2
    """How often a node tells the monitors what its detector sees (the vote's input)."""
    chores_interval: Seconds = 0.1
    """How often the leader proposes what it heard and what the vote decided."""
    raft_tick: Seconds = 0.05
    """Raft's clock: elections time out after 10-20 ticks of silence from a leader."""
    election_ticks: Annotated[int, msgspec.Meta(ge=3, le=1000)] = 10
    raft_heartbeat_ticks: Annotated[int, msgspec.Meta(ge=1, le=100)] = 2
    """The leader heartbeats its followers every this many ticks (fewer messages at idle;
    an election still starts 10-20 ticks after the last one)."""
    out_after: Seconds = 300.0
    """A node down this long is marked out, and its data starts moving (recovery)."""
    lease_ttl: Seconds = 1.0
    """A compute node's lease (docs/ha.md): as short as the vote, so waiting it out adds
    nothing to a failover, and long enough to ride out a few lost renewals."""
    lease_renew: Seconds = 0.1
    clock_drift: Annotated[float, msgspec.Meta(ge=0, lt=0.1)] = 0.01
    """The bound on any clock's rate error (rho) the lease inequality assumes."""
    lease_margin: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.05
    stop_time: Seconds = 0.1
    """What a node allows itself to kill its containers before its lease ends."""


class StorageConfig(_Strict, frozen=True, kw_only=True):
    """The OSDs of this node: how much of each disk stays free, and the collector."""

    reserve_bytes: Annotated[int, msgspec.Meta(ge=0)] = 64 * 1024 * 1024
    """Shard writes are refused when a disk has less free space than this, so metadata,
    deletions and the collector can still run on a full disk."""
    gc_interval: Seconds = 60.0
    """How often each OSD looks for shards no object version needs."""
    gc_superseded_after: Seconds = 600.0
    """Shards of a replaced or removed version are deleted this long after the newer
    version was written (a reader of the old version has this long to finish)."""
    gc_orphan_after: Seconds = 3600.0
    """Shards that no committed version names (a failed or killed writer) are deleted
    when this old; it must exceed the longest put."""


class ComputeConfig(_Strict, frozen=True, kw_only=True):
    """What a compute node offers containers, and where their service addresses live."""

    cpus: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 0
    """0: the CPUs of the machine."""
    memory_mib: Annotated[int, msgspec.Meta(ge=0)] = 0
    """0: the memory of the machine."""
    service_addresses: str = ""
    """The rack's pool of service addresses (a CIDR); the monitors put it in the map."""
    interface: str = ""
    """Where service addresses go (``eth0``); empty in loopback mode (127.x addresses)."""
    state_dir: str = ""
    """Container logs and state; empty: ``DATA_DIR/containers``."""
    client_conf: str = ""
    """The client config containers get as ``RACK_CONF`` to reach the rack's store."""


class DiscoveryConfig(_Strict, frozen=True, kw_only=True):
    enabled: bool = True


class NodeConfig(_Strict, frozen=True, kw_only=True):
    cluster: str
    node: str
    bind: str
    rpc_port: Port = DEFAULT_RPC_PORT
    pub_port: Port = DEFAULT_PUB_PORT
    data_port: Port = DEFAULT_DATA_PORT
    roles: tuple[NodeRole, ...] = ("osd", "compute")
    monitors: tuple[str, ...] = ()
    """The initial monitors (node names), the same list on every node; odd, 1, 3 or 5."""
    data_dir: str
    disks: tuple[str, ...] = ()
    keys: KeysConfig
    timing: TimingConfig = TimingConfig()
    storage: StorageConfig = StorageConfig()
    compute: ComputeConfig = ComputeConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def record(self, public_key: str) -> NodeRecord:
        """This node as every other node and the map should know it."""
        return NodeRecord(
            name=self.node,
            address=self.bind,
            rpc_port=self.rpc_port,
            pub_port=self.pub_port,
            public_key=public_key,
            roles=self.roles,
            data_port=self.data_port if "osd" in self.roles else 0,
            cpus=self.offered_cpus() if "compute" in self.roles else 0,
            memory_bytes=self.offered_memory() if "compute" in self.roles else 0,
        )

    def offered_cpus(self) -> int:
        return self.compute.cpus or os.cpu_count() or 1

    def offered_memory(self) -> int:
        if self.compute.memory_mib:
            return self.compute.memory_mib * 1024 * 1024
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class ClientConfig(_Strict, frozen=True, kw_only=True):
    cluster: str
    keys: KeysConfig
    nodes: tuple[NodeRecord, ...]
    """The nodes to ask; their keys come from the allowlist."""
    timeout: Seconds = 3.0


_T = TypeVar("_T", NodeConfig, ClientConfig)


def _parse(path: Path, kind: type[_T]) -> _T:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if kind is ClientConfig:
        _refuse_unknown_node_fields(path, raw.get("nodes"))
    try:
        conf = msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config file {path}: {_field_sentence(str(exc))}") from None
    return _resolve_paths(conf, path.parent)


def _refuse_unknown_node_fields(path: Path, nodes: object) -> None:
    """Node records are lenient on the wire (newer fields are ignored), strict in a file."""
    if not isinstance(nodes, list):
        return
    known = set(NodeRecord.__struct_fields__)
    for entry in nodes:
        extra = sorted(set(entry) - known) if isinstance(entry, dict) else []
        if extra:
            raise ConfigError(
                f"config file {path}: field 'nodes.{extra[0]}' is not a known setting (a typo?)"
            )


def _field_sentence(msgspec_error: str) -> str:
    """Turn msgspec's "Expected `int`, got `str` - at `$.timing.x`" into field-first prose."""
    message, sep, where = msgspec_error.rpartition(" - at ")
    if not sep:
        message, where = msgspec_error, "$"
    field = where.strip("`").removeprefix("$").removeprefix(".")
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", message)
    if unknown:
        name = f"{field}.{unknown[1]}" if field else unknown[1]
        return f"field '{name}' is not a known setting (a typo?)"
    return f"field '{field}': {message[0].lower()}{message[1:]}"


def _resolve_paths(conf: _T, base: Path) -> _T:
    """Make relative paths relative to the config file, so a config works from any cwd."""

    def absolute(p: str) -> str:
        return p if os.path.isabs(p) else str((base / p).resolve())

    keys = KeysConfig(secret=absolute(conf.keys.secret), allowlist=absolute(conf.keys.allowlist))
    if isinstance(conf, NodeConfig):
        return msgspec.structs.replace(
            conf,
            keys=keys,
            data_dir=absolute(conf.data_dir),
            disks=tuple(absolute(d) for d in conf.disks),
        )
    return msgspec.structs.replace(conf, keys=keys)


def _check_address(where: Path, field: str, value: str) -> None:
    try:
        addr = ipaddress.IPv4Address(value)
    except ValueError:
        raise ConfigError(
            f"config file {where}: field '{field}': {value!r} is not an IPv4 address"
        ) from None
    if addr.is_unspecified:
        raise ConfigError(
            f"config file {where}: field '{field}': 0.0.0.0 would listen on every interface; "
            "give the rack interface's address"
        )


def _check_names(where: Path, pairs: list[tuple[str, str]]) -> None:
    for field, value in pairs:
        try:
            check_name(value, field)
        except BadName as exc:
            raise ConfigError(f"config file {where}: field '{field}': {exc}") from None


def load_node_config(path: str | os.PathLike[str]) -> NodeConfig:
    """Load and validate a node's config (the file Ansible writes for ``rack-agent``)."""
    where = Path(path)
    conf = _parse(where, NodeConfig)
    _check_names(where, [("cluster", conf.cluster), ("node", conf.node)])
    _check_address(where, "bind", conf.bind)
    if len({conf.rpc_port, conf.pub_port, conf.data_port}) < 3:
        raise ConfigError(
            f"config file {where}: fields 'rpc_port', 'pub_port' and 'data_port' must differ"
        )
    if len(set(conf.disks)) != len(conf.disks):
        raise ConfigError(f"config file {where}: field 'disks': a disk is listed twice")
    t = conf.timing
    if not t.heartbeat_interval < t.suspect_after < t.dead_after:
        raise ConfigError(
            f"config file {where}: field 'timing': need heartbeat_interval < suspect_after "
            f"< dead_after, got {t.heartbeat_interval} / {t.suspect_after} / {t.dead_after}"
        )
    if t.lease_renew * 3 > t.lease_ttl or t.lease_ttl * (1 - t.clock_drift) <= t.stop_time * 2:
        raise ConfigError(
            f"config file {where}: field 'timing': a lease of {t.lease_ttl} s needs renewals "
            f"at least 3 times as often (lease_renew {t.lease_renew} s) and more than twice "
            f"stop_time ({t.stop_time} s)"
        )
    if conf.compute.service_addresses:
        try:
            ipaddress.IPv4Network(conf.compute.service_addresses)
        except ValueError:
            raise ConfigError(
                f"config file {where}: field 'compute.service_addresses': "
                f"{conf.compute.service_addresses!r} is not an IPv4 network such as 10.0.0.192/26"
            ) from None
    if len(set(conf.roles)) != len(conf.roles):
        raise ConfigError(f"config file {where}: field 'roles': a role is listed twice")
    _check_names(where, [("monitors", m) for m in conf.monitors])
    if len(set(conf.monitors)) != len(conf.monitors):
        raise ConfigError(f"config file {where}: field 'monitors': a monitor is listed twice")
    if ("mon" in conf.roles) != (conf.node in conf.monitors):
        raise ConfigError(
            f"config file {where}: field 'monitors': node {conf.node} "
            + (
                "has the mon role but is not listed"
                if "mon" in conf.roles
                else "is listed but lacks the mon role"
            )
        )
    return conf


def load_client_config(path: str | os.PathLike[str]) -> ClientConfig:
    """Load and validate a client config (``rack --conf FILE``; the lab writes one)."""
    where = Path(path)
    conf = _parse(where, ClientConfig)
    _check_names(where, [("cluster", conf.cluster), *(("nodes.name", n.name) for n in conf.nodes)])
    if not conf.nodes:
        raise ConfigError(f"config file {where}: field 'nodes': list at least one node")
    for n in conf.nodes:
        _check_address(where, "nodes.address", n.address)
        for port in (n.rpc_port, n.pub_port, n.data_port or 1):
            if not 0 < port < 65536:
                raise ConfigError(
                    f"config file {where}: field 'nodes.*_port': {port} is not a port (1-65535)"
                )
    return conf


def dump_toml(data: object) -> str:
    """Encode plain data as TOML (used by the lab and keyring writers)."""
    return msgspec.toml.encode(data).decode()
