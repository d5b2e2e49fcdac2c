"""A disk is used only by the node and path it was claimed for; anything else is refused."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import msgspec
import pytest

from agent.store import DiskIdentity, ForeignDisk, UnknownFormat, claim
from agent.store.identity import IDENTITY_FILE


def test_a_fresh_claim_creates_the_directory_and_an_identity(tmp_path: Path) -> None:
    root = tmp_path / "disks" / "d1"
    ident = claim(root, cluster="c", node="n1", wall=1234.5)
    assert (ident.cluster, ident.node, ident.disk) == ("c", "n1", str(root))
    assert ident.format == 1
    assert ident.created_at == 1234.5
    assert len(ident.uuid) == 36
    file = root / IDENTITY_FILE
    assert stat.S_IMODE(file.stat().st_mode) == 0o644
    assert msgspec.json.decode(file.read_bytes(), type=DiskIdentity) == ident
    assert sorted(p.name for p in root.iterdir()) == [IDENTITY_FILE]


def test_a_reclaim_returns_the_same_identity(tmp_path: Path) -> None:
    first = claim(tmp_path / "d", cluster="c", node="n1", wall=1.0)
    again = claim(tmp_path / "d", cluster="c", node="n1", wall=99.0)
    assert again == first
    other = claim(tmp_path / "e", cluster="c", node="n1", wall=1.0)
    assert other.uuid != first.uuid


def test_lost_and_found_and_an_unfinished_claim_still_count_as_empty(tmp_path: Path) -> None:
    root = tmp_path / "d"
    (root / "lost+found").mkdir(parents=True)
    (root / (IDENTITY_FILE + ".tmp")).write_bytes(b'{"half')
    ident = claim(root, cluster="c", node="n1", wall=1.0)
    assert ident.disk == str(root)
    assert not (root / (IDENTITY_FILE + ".tmp")).exists()


@pytest.mark.parametrize(
    ("cluster", "node", "owner"),
    [
        ("c", "n2", "node n1's disk {old} of cluster c, not to node n2's disk {old} of cluster c"),
        ("other", "n1", "of cluster c, not to node n1's disk {old} of cluster other"),
    ],
)
def test_a_disk_of_another_node_or_cluster_is_refused(
    tmp_path: Path, cluster: str, node: str, owner: str
) -> None:
    root = tmp_path / "d"
    claim(root, cluster="c", node="n1", wall=1.0)
    with pytest.raises(ForeignDisk) as err:
        claim(root, cluster=cluster, node=node, wall=2.0)
    assert owner.format(old=root) in str(err.value)
    assert "swapped or copied, so it is refused" in str(err.value)
    assert err.value.disk == str(root)


def test_a_disk_moved_to_another_path_is_refused_naming_its_old_path(tmp_path: Path) -> None:
    old = tmp_path / "slot1"
    claim(old, cluster="c", node="n1", wall=1.0)
    new = tmp_path / "slot2"
    shutil.copytree(old, new)
    with pytest.raises(ForeignDisk) as err:
        claim(new, cluster="c", node="n1", wall=2.0)
    assert str(err.value) == (
        f"disk {new} belongs to node n1's disk {old} of cluster c, not to node n1's disk "
        f"{new} of cluster c: it was swapped or copied, so it is refused"
    )


def test_a_directory_with_files_but_no_identity_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "photos").write_text("mine")
    with pytest.raises(ForeignDisk) as err:
        claim(root, cluster="c", node="n1", wall=1.0)
    assert str(err.value) == (
        f"disk {root} holds files but no rackcloud identity, so it is not used; empty it or "
        "point the config at another directory"
    )
    assert not (root / IDENTITY_FILE).exists()


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"format": 1, "cluster": "c"}', b'{"format": true}', b"\xff"],
)
def test_a_garbled_identity_is_refused(tmp_path: Path, content: bytes) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / IDENTITY_FILE).write_bytes(content)
    with pytest.raises(ForeignDisk, match=r"identity file .* cannot be read"):
        claim(root, cluster="c", node="n1", wall=1.0)
    assert (root / IDENTITY_FILE).read_bytes() == content


def test_an_identity_of_an_unknown_format_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "d"
    claim(root, cluster="c", node="n1", wall=1.0)
    raw = msgspec.json.decode((root / IDENTITY_FILE).read_bytes())
    (root / IDENTITY_FILE).write_bytes(msgspec.json.encode({**raw, "format": 2}))
    with pytest.raises(UnknownFormat, match="identity format 2"):
        claim(root, cluster="c", node="n1", wall=1.0)


def test_a_file_where_the_disk_should_be_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.write_text("x")
    with pytest.raises(ForeignDisk, match="is not a directory"):
        claim(root, cluster="c", node="n1", wall=1.0)
