from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import zmq

from agent.errors import KeyringError
from agent.keys import create_keyring, enroll, load_allowlist, load_keypair, rotate
from agent.names import BadName


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_writes_private_keys_0600_and_a_matching_allowlist(tmp_path: Path) -> None:
    allowlist = create_keyring(tmp_path, ["n1", "n2"], ["admin"], cluster="c1")
    assert allowlist.cluster == "c1"
    assert [(e.name, e.kind) for e in allowlist.keys] == [
        ("n1", "node"),
        ("n2", "node"),
        ("admin", "client"),
    ]
    for name in ("n1", "n2", "admin"):
        path = tmp_path / "secret" / f"{name}.key"
        assert mode(path) == 0o600
        pair = load_keypair(path)
        # The secret really belongs to the enrolled public key.
        assert zmq.curve_public(pair.secret.encode()).decode() == pair.public
        assert allowlist.by_name(name) is not None
        assert allowlist.by_name(name).public == pair.public  # type: ignore[union-attr]
    assert load_allowlist(tmp_path / "allowlist.toml") == allowlist
    assert len({e.public for e in allowlist.keys}) == 3


def test_refuses_to_overwrite_a_keyring(tmp_path: Path) -> None:
    create_keyring(tmp_path, ["n1"], [])
    before = (tmp_path / "allowlist.toml").read_text()
    with pytest.raises(KeyringError, match="already exists"):
        create_keyring(tmp_path, ["n1"], [])
    assert (tmp_path / "allowlist.toml").read_text() == before


def test_readable_secret_is_refused(tmp_path: Path) -> None:
    create_keyring(tmp_path, ["n1"], [])
    path = tmp_path / "secret" / "n1.key"
    os.chmod(path, 0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        load_keypair(path)


def test_enroll_adds_a_key_and_refuses_duplicates(tmp_path: Path) -> None:
    create_keyring(tmp_path, ["n1"], ["admin"])
    pair = enroll(tmp_path, "n2", "node")
    allowlist = load_allowlist(tmp_path / "allowlist.toml")
    assert allowlist.by_public(pair.public) is not None
    assert [e.name for e in allowlist.nodes()] == ["n1", "n2"]
    with pytest.raises(KeyringError, match="already enrolled"):
        enroll(tmp_path, "n2", "node")


def test_bad_names_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(BadName):
        create_keyring(tmp_path / "a", ["../etc"], [])
    with pytest.raises(KeyringError, match="different name"):
        create_keyring(tmp_path / "b", ["n1"], ["n1"])


def test_corrupt_allowlist_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "allowlist.toml").write_text(
        'cluster = "c"\n[[keys]]\nname = "n1"\nkind = "node"\npublic = "short"\n'
    )
    with pytest.raises(KeyringError, match="not a Z85"):
        load_allowlist(tmp_path / "allowlist.toml")


def test_rotate_gives_one_identity_a_new_key_and_keeps_the_rest(tmp_path: Path) -> None:
    before = create_keyring(tmp_path, ["n1", "n2"], ["admin"], cluster="c1")
    old_secret = (tmp_path / "secret" / "n1.key").read_text()
    pair = rotate(tmp_path, "n1")
    after = load_allowlist(tmp_path / "allowlist.toml")
    assert after.cluster == "c1"
    assert [(e.name, e.kind) for e in after.keys] == [(e.name, e.kind) for e in before.keys]
    assert after.by_name("n1").public == pair.public  # type: ignore[union-attr]
    assert pair.public != before.by_name("n1").public  # type: ignore[union-attr]
    assert after.by_public(before.by_name("n1").public) is None  # type: ignore[union-attr]
    for name in ("n2", "admin"):
        assert after.by_name(name) == before.by_name(name)
    path = tmp_path / "secret" / "n1.key"
    assert mode(path) == 0o600
    assert path.read_text() != old_secret
    assert load_keypair(path) == pair
    assert zmq.curve_public(pair.secret.encode()).decode() == pair.public


def test_rotate_keeps_a_clients_kind(tmp_path: Path) -> None:
    create_keyring(tmp_path, ["n1"], ["admin"])
    pair = rotate(tmp_path, "admin")
    entry = load_allowlist(tmp_path / "allowlist.toml").by_name("admin")
    assert entry is not None and (entry.kind, entry.public) == ("client", pair.public)
    assert mode(tmp_path / "secret" / "admin.key") == 0o600


def test_rotating_an_unknown_name_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    create_keyring(tmp_path, ["n1"], ["admin"], cluster="c1")
    before = (tmp_path / "allowlist.toml").read_bytes()
    with pytest.raises(KeyringError) as info:
        rotate(tmp_path, "n9")
    assert str(info.value) == "'n9' is not enrolled in cluster c1"
    assert (tmp_path / "allowlist.toml").read_bytes() == before
    assert not (tmp_path / "secret" / "n9.key").exists()


def test_rack_keys_rotate_prints_the_new_key(tmp_path: Path) -> None:
    create_keyring(tmp_path, ["n1", "n2"], ["admin"], cluster="c1")
    old = load_allowlist(tmp_path / "allowlist.toml").by_name("n2")
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "keys", "rotate", "n2", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    new = load_allowlist(tmp_path / "allowlist.toml").by_name("n2")
    assert new is not None and old is not None and new.public != old.public
    assert new.public == load_keypair(tmp_path / "secret" / "n2.key").public
    assert done.stdout == f"rotated n2: new key {new.public}; restart its agent to use it\n"
    unknown = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "keys", "rotate", "n9", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "'n9' is not enrolled in cluster c1" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
