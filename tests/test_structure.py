"""The house stays livable: no class outside the pure Raft core grows past 300 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "agent"
MAX_CLASS_LINES = 300
EXEMPT = {("raft/core.py", "RaftNode"): "the pure Raft core: one algorithm, role-swapped handlers"}


def class_lengths() -> dict[tuple[str, str], int]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                key = (str(path.relative_to(ROOT)), node.name)
                out[key] = (node.end_lineno or node.lineno) - node.lineno + 1
    return out


def test_no_class_is_longer_than_the_limit() -> None:
    too_long = {
        f"{path}:{name}": lines
        for (path, name), lines in class_lengths().items()
        if lines > MAX_CLASS_LINES and (path, name) not in EXEMPT
    }
    assert not too_long, f"classes over {MAX_CLASS_LINES} lines: {too_long}"


def test_the_measure_sees_the_big_classes() -> None:
    lengths = class_lengths()
    assert lengths[("raft/core.py", "RaftNode")] > MAX_CLASS_LINES  # exempt, and measured
    assert lengths[("node/node.py", "Node")] > 100
