"""The cluster keyring: CURVE keypairs and the allowlist of enrolled public keys.

Layout of a keyring directory (made by ``rack keys create``)::

    allowlist.toml        cluster id and every enrolled public key (mode 0644)
    secret/<name>.key     one private key per node or client (mode 0600)

Ansible generates the keyring on the controller and ships each node only its own secret
file plus the allowlist. A secret file readable by anyone else is refused, as ssh does.
"""

from __future__ import annotations

import os
import secrets
import stat
import tomllib
from pathlib import Path

import msgspec
import zmq

from agent.config import dump_toml
from agent.enrolment import Allowlist, Enrolled, KeyKind
from agent.errors import KeyringError
from agent.names import check_name

ALLOWLIST = "allowlist.toml"
SECRET_DIR = "secret"  # noqa: S105 (a directory name, not a password)


class Keypair(msgspec.Struct, frozen=True, kw_only=True):
    """A CURVE keypair, Z85 text as ZeroMQ uses it."""

    name: str
    public: str
    secret: str


def new_keypair(name: str) -> Keypair:
    public, secret = zmq.curve_keypair()
    return Keypair(name=name, public=public.decode(), secret=secret.decode())


def new_cluster_id() -> str:
    return "rc-" + secrets.token_hex(4)


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the first byte: never briefly world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_allowlist(directory: Path, allowlist: Allowlist) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ALLOWLIST
    _write_public(path, dump_toml(msgspec.to_builtins(allowlist)))
    return path


def write_keypair(directory: Path, pair: Keypair) -> Path:
    path = directory / SECRET_DIR / f"{pair.name}.key"
    _write_private(path, dump_toml(msgspec.to_builtins(pair)))
    return path


def create_keyring(
    directory: Path, nodes: list[str], clients: list[str], cluster: str | None = None
) -> Allowlist:
    """Make a new keyring; refuses to overwrite one, since that would lock every node out."""
    if (directory / ALLOWLIST).exists():
        raise KeyringError(
            f"a keyring already exists in {directory}; use 'rack keys add' to enroll more"
        )
    cluster = check_name(cluster, "cluster id") if cluster else new_cluster_id()
    names = [check_name(n, "node name") for n in nodes] + [
        check_name(c, "client name") for c in clients
    ]
    if len(set(names)) != len(names):
        raise KeyringError("every node and client needs a different name")
    enrolled: list[Enrolled] = []
    for name in names:
        pair = new_keypair(name)
        write_keypair(directory, pair)
        kind: KeyKind = "node" if name in nodes else "client"
        enrolled.append(Enrolled(name=name, kind=kind, public=pair.public))
    allowlist = Allowlist(cluster=cluster, keys=tuple(enrolled))
    write_allowlist(directory, allowlist)
    return allowlist


def enroll(directory: Path, name: str, kind: KeyKind) -> Keypair:
    """Add one identity to an existing keyring (a new node or an operator's client)."""
    allowlist = load_allowlist(directory / ALLOWLIST)
    check_name(name, f"{kind} name")
    if allowlist.by_name(name):
        raise KeyringError(f"{name!r} is already enrolled in cluster {allowlist.cluster}")
    pair = new_keypair(name)
    write_keypair(directory, pair)
    entry = Enrolled(name=name, kind=kind, public=pair.public)
    write_allowlist(directory, Allowlist(cluster=allowlist.cluster, keys=(*allowlist.keys, entry)))
    return pair


def rotate(directory: Path, name: str) -> Keypair:
    """Give an enrolled identity a new keypair; the old key is refused from then on."""
    allowlist = load_allowlist(directory / ALLOWLIST)
    old = allowlist.by_name(name)
    if old is None:
        raise KeyringError(f"{name!r} is not enrolled in cluster {allowlist.cluster}")
    pair = new_keypair(name)
    write_keypair(directory, pair)
    entry = Enrolled(name=name, kind=old.kind, public=pair.public)
    keys = tuple(entry if e.name == name else e for e in allowlist.keys)
    write_allowlist(directory, Allowlist(cluster=allowlist.cluster, keys=keys))
    return pair


def load_allowlist(path: str | os.PathLike[str]) -> Allowlist:
    where = Path(path)
    try:
        raw = tomllib.loads(where.read_text(encoding="utf-8"))
        allowlist = msgspec.convert(raw, Allowlist)
    except FileNotFoundError:
        raise KeyringError(f"allowlist {where} does not exist; run 'rack keys create'") from None
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise KeyringError(f"allowlist {where} cannot be read: {exc}") from None
    for entry in allowlist.keys:
        if len(entry.public) != 40:
            raise KeyringError(
                f"allowlist {where}: the key of {entry.name!r} is not a Z85 CURVE key"
            )
    return allowlist


def load_keypair(path: str | os.PathLike[str]) -> Keypair:
    """Load a private key file, refusing one that group or others could read."""
    where = Path(path)
    try:
        mode = stat.S_IMODE(where.stat().st_mode)
    except FileNotFoundError:
        raise KeyringError(f"key file {where} does not exist") from None
    if mode & 0o077:
        raise KeyringError(
            f"key file {where} has mode {mode:04o}, readable by others; run 'chmod 600 {where}'"
        )
    try:
        pair = msgspec.convert(tomllib.loads(where.read_text(encoding="utf-8")), Keypair)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise KeyringError(f"key file {where} cannot be read: {exc}") from None
    if len(pair.public) != 40 or len(pair.secret) != 40:
        raise KeyringError(f"key file {where} does not hold a Z85 CURVE keypair")
    return pair
