"""The pure core stays pure: no module of it imports I/O, clocks or global randomness.

Checked on the source (imports at run time, i.e. outside ``if TYPE_CHECKING:``), and
transitively: a pure module may import only other pure modules of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "agent"
PURE_PACKAGES = ("raft", "clustermap", "placement", "ec", "core", "wire", "objects")
PURE_MODULES = ("record", "enrolment", "names", "errors")
NOT_PURE = {
    "agent.raft.storage": "the Raft log on disk: the package's one I/O module, by design",
    "agent.raft.sim": "the Raft simulator's command line (multiprocessing, timing of runs)",
    "agent.raft.harness": "the golden-test harness (a random.Random subclass that always "
    "draws the largest value)",
    "agent.ec.isal_lib": "finds and dlopens ISA-L ($RACKCLOUD_EC_ISAL, /proc/self/maps): the "
    "codec's one module that looks at the host; entry points call it, the codec never does",
}
FORBIDDEN = {"asyncio", "zmq", "socket", "os", "time", "random"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def pure_modules() -> dict[str, Path]:
    found = {}
    for pkg in PURE_PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            found[_module_name(path)] = path
    for mod in PURE_MODULES:
        found[f"agent.{mod}"] = ROOT / f"{mod}.py"
    return {name: path for name, path in found.items() if name not in NOT_PURE}


def runtime_imports(source: str) -> set[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


PURE = pure_modules()


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_module_imports_no_io_clock_or_randomness(name: str) -> None:
    imports = runtime_imports(PURE[name].read_text())
    bad = sorted(i for i in imports if i.split(".")[0] in FORBIDDEN)
    assert not bad, f"{name} imports {bad}"
    impure = sorted(i for i in imports if i.startswith("agent.") and i not in PURE)
    assert not impure, f"{name} imports modules outside the pure core: {impure}"


def test_the_checker_catches_a_forbidden_import() -> None:
    sneaky = "from __future__ import annotations\nimport time\nfrom typing import TYPE_CHECKING\n"
    sneaky += "if TYPE_CHECKING:\n    import random\n"
    assert runtime_imports(sneaky) == {"__future__", "time", "typing"}
    assert "time" in FORBIDDEN


def test_every_pure_package_is_found() -> None:
    assert {n.split(".")[1] for n in PURE} >= set(PURE_PACKAGES) | set(PURE_MODULES)
    assert "agent.core.vote" in PURE and "agent.raft.driver" in PURE
