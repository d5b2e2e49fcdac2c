"""The watched allowlist file: a grown list is taken, a wrong copy refused and the old kept.

Real keyrings made by ``create_keyring``; the file changes as ``rack keys add``/``rotate``
(and Ansible's ``copy``) change it: a new file renamed over the old one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.errors import KeyringError
from agent.keys import ALLOWLIST, create_keyring, enroll, load_allowlist, rotate
from agent.node.allowlist_file import AllowlistFile

CLUSTER = "rc-watch"


def keyring(base: Path) -> tuple[Path, AllowlistFile]:
    ring = base / "keys"
    current = create_keyring(ring, ["n1", "n2", "n3"], ["admin"], cluster=CLUSTER)
    return ring, AllowlistFile(ring / ALLOWLIST, current, "n1")


def replace_with(path: Path, source: Path) -> None:
    """Ship ``source`` over ``path`` as Ansible does: a copy beside it, renamed over it."""
    tmp = path.with_name(path.name + ".new")
    shutil.copyfile(source, tmp)
    os.replace(tmp, path)


def test_an_unchanged_file_yields_nothing(tmp_path: Path) -> None:
    _, watched = keyring(tmp_path)
    before = watched.current
    for _ in range(3):
        assert watched.changed() is None
    assert watched.current is before


def test_a_grown_allowlist_is_taken_once(tmp_path: Path) -> None:
    ring, watched = keyring(tmp_path)
    before = watched.current
    pair = enroll(ring, "n9", "node")
    new = watched.changed()
    assert new is not None
    assert new == load_allowlist(ring / ALLOWLIST)
    assert new.node_key("n9") == pair.public
    assert [e.name for e in new.keys] == ["n1", "n2", "n3", "admin", "n9"]
    assert new.node_key("n1") == before.node_key("n1")
    assert watched.current is new
    assert watched.changed() is None
    assert watched.current is new


def test_another_nodes_new_key_is_taken(tmp_path: Path) -> None:
    ring, watched = keyring(tmp_path)
    old_n2 = watched.current.node_key("n2")
    pair = rotate(ring, "n2")
    new = watched.changed()
    assert new is not None and new.node_key("n2") == pair.public != old_n2
    assert watched.current is new


def test_an_allowlist_of_another_cluster_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    ring, watched = keyring(tmp_path)
    before = watched.current
    other = tmp_path / "other"
    create_keyring(other, ["n1", "n2", "n3"], ["admin"], cluster="rc-other")
    replace_with(ring / ALLOWLIST, other / ALLOWLIST)
    with pytest.raises(KeyringError) as info:
        watched.changed()
    assert str(info.value) == (
        f"the new allowlist {ring / ALLOWLIST} is for cluster rc-other, not {CLUSTER}: "
        "kept the old one"
    )
    assert watched.current is before
    # Refused once per change: the same wrong file is not refused again at every look.
    assert watched.changed() is None
    assert watched.current is before


def test_an_allowlist_with_another_key_for_this_node_is_refused(tmp_path: Path) -> None:
    ring, watched = keyring(tmp_path)
    before = watched.current
    pair = rotate(ring, "n1")
    assert load_allowlist(ring / ALLOWLIST).node_key("n1") == pair.public
    with pytest.raises(KeyringError) as info:
        watched.changed()
    assert str(info.value) == (
        f"the new allowlist {ring / ALLOWLIST} does not enrol node n1 with its key: "
        "kept the old one"
    )
    assert watched.current is before
    assert watched.current.node_key("n1") != pair.public
    assert watched.changed() is None


def test_an_allowlist_without_this_node_is_refused(tmp_path: Path) -> None:
    ring, watched = keyring(tmp_path)
    before = watched.current
    other = tmp_path / "other"
    create_keyring(other, ["n2", "n3"], ["admin"], cluster=CLUSTER)
    replace_with(ring / ALLOWLIST, other / ALLOWLIST)
    with pytest.raises(KeyringError, match="does not enrol node n1 with its key: kept the old"):
        watched.changed()
    assert watched.current is before


def test_a_corrupt_file_is_refused_once(tmp_path: Path) -> None:
    ring, watched = keyring(tmp_path)
    before = watched.current
    broken = tmp_path / "broken.toml"
    broken.write_text("cluster = [not toml\n", encoding="utf-8")
    replace_with(ring / ALLOWLIST, broken)
    with pytest.raises(KeyringError, match="cannot be read"):
        watched.changed()
    assert watched.current is before
    assert watched.changed() is None


def test_a_removed_file_yields_nothing_and_its_return_is_seen(tmp_path: Path) -> None:
    ring, watched = keyring(tmp_path)
    before = watched.current
    saved = tmp_path / "saved.toml"
    shutil.copyfile(ring / ALLOWLIST, saved)
    (ring / ALLOWLIST).unlink()
    assert watched.changed() is None
    assert watched.changed() is None
    assert watched.current is before
    # The file comes back, grown: it is looked at again.
    replace_with(ring / ALLOWLIST, saved)
    pair = enroll(ring, "n9", "node")
    new = watched.changed()
    assert new is not None and new.node_key("n9") == pair.public
    assert watched.current is new


def test_the_same_list_rewritten_is_no_change(tmp_path: Path) -> None:
    ring, watched = keyring(tmp_path)
    before = watched.current
    copy = tmp_path / "copy.toml"
    shutil.copyfile(ring / ALLOWLIST, copy)
    inode = (ring / ALLOWLIST).stat().st_ino
    replace_with(ring / ALLOWLIST, copy)
    assert (ring / ALLOWLIST).stat().st_ino != inode  # a new file, the same keys: it is read
    assert watched.changed() is None
    assert watched.current is before
