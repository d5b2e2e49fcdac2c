"""``rack keys`` as an operator runs it."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path


def rack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True, check=False
    )


def test_create_list_add(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    made = rack("keys", "create", "--dir", str(ring), "--nodes", "n1,n2", "--cluster", "prod-1")
    assert made.returncode == 0, made.stderr
    assert "cluster prod-1: 2 node and 1 client keys" in made.stdout
    for name in ("n1", "n2", "admin"):
        assert stat.S_IMODE((ring / "secret" / f"{name}.key").stat().st_mode) == 0o600
    added = rack("keys", "add", "n3", "--dir", str(ring))
    assert added.returncode == 0, added.stderr
    listed = rack("keys", "list", "--dir", str(ring), "--json")
    data = json.loads(listed.stdout)
    assert data["cluster"] == "prod-1"
    assert [(k["name"], k["kind"]) for k in data["keys"]] == [
        ("n1", "node"),
        ("n2", "node"),
        ("admin", "client"),
        ("n3", "node"),
    ]


def test_errors_are_one_sentence_and_change_nothing(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    assert rack("keys", "create", "--dir", str(ring), "--nodes", "n1").returncode == 0
    before = (ring / "allowlist.toml").read_bytes()
    again = rack("keys", "create", "--dir", str(ring), "--nodes", "n1")
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = rack("keys", "add", "Bad/Name", "--dir", str(ring))
    assert bad.returncode == 1 and "is not valid" in bad.stderr
    for proc in (again, bad):
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert (ring / "allowlist.toml").read_bytes() == before
