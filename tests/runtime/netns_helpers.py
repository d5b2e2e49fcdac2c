"""Running ``ip`` and Python snippets in throwaway namespaces (the address and GARP tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    assert not check or proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def netns_argv(netns: str, code: str, *wrapper: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *wrapper, sys.executable, "-c", code]


def in_netns(netns: str, code: str, *wrapper: str) -> str:
    """Run a Python snippet inside ``netns``: the test process never changes namespace."""
    proc = subprocess.run(
        netns_argv(netns, code, *wrapper),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
