"""Golden scenario scripts: ``tests/raft/testdata/*.txt`` drive a three-node cluster.

Lines starting with ``> `` are commands; the lines after a command (up to the next
command, blank line or ``#`` comment) are the output it must print. The expected lines
were written from Raft's rules, not recorded from a run, so a mismatch is a finding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.raft.errors import RaftError
from agent.raft.harness import Cluster, describe
from agent.raft.messages import ConfOp

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))


def _ids(arg: str, cluster: Cluster) -> list[int]:
    if arg == "all":
        return sorted(cluster.nodes)
    return [int(x) for x in arg.split(",")]


def run_command(cluster: Cluster, line: str) -> list[str]:
    """Execute one script command and return what it prints."""
    cmd, *args = line.split()
    out: list[str] = []

    def attempt(fn: object, node_id: int) -> None:
        try:
            result = fn()  # type: ignore[operator]
        except RaftError as exc:
            out.append(f"error {type(exc).__name__}: {exc}")
        else:
            out.append("ok" if result is None else f"ok index={result}")
        cluster.process(node_id)

    if cmd == "campaign":
        cluster.drivers[int(args[0])].campaign()
        cluster.process(int(args[0]))
    elif cmd == "stabilize":
        cluster.stabilize()
    elif cmd == "tick":
        cluster.tick(_ids(args[0], cluster), int(args[1]))
    elif cmd == "propose":
        driver = cluster.drivers[int(args[0])]
        attempt(lambda: driver.propose(args[1].encode()), driver.node.id)
    elif cmd == "conf":
        driver = cluster.drivers[int(args[0])]
        op, target = ConfOp(args[1]), int(args[2])
        if op == ConfOp.ADD and target not in cluster.stores:
            cluster.add_node(target)
        attempt(lambda: driver.propose_conf_change(op, target), driver.node.id)
    elif cmd == "transfer":
        driver = cluster.drivers[int(args[0])]
        attempt(lambda: driver.transfer_leadership(int(args[1])), driver.node.id)
    elif cmd == "isolate":
        cluster.isolate(int(args[0]))
    elif cmd == "heal":
        cluster.heal()
    elif cmd == "crash":
        cluster.crash(int(args[0]))
    elif cmd == "restart":
        cluster.restart(int(args[0]))
    elif cmd == "compact":
        cluster.compact(int(args[0]))
    elif cmd == "status":
        for i in sorted(cluster.stores):
            member = cluster.nodes.get(i)
            out.append(member.status() if member else f"{i} down")
    elif cmd == "log":
        out.extend(cluster.log_lines(int(args[0])))
    elif cmd == "applied":
        out.extend(describe_applied(cluster, int(args[0])))
    elif cmd == "voters":
        out.append(" ".join(str(v) for v in cluster.nodes[int(args[0])].voters))
    else:
        raise ValueError(f"unknown command {cmd!r}")
    return out


def describe_applied(cluster: Cluster, node_id: int) -> list[str]:
    return [f"{i}/{t} {d.decode()}" for i, t, d in cluster.applied[node_id]]


def parse(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, command, expected output lines) for each command of a script."""
    steps: list[tuple[int, str, list[str]]] = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.rstrip()
        if line.startswith("> "):
            steps.append((n, line[2:], []))
        elif line and not line.startswith("#"):
            if not steps:
                raise ValueError(f"{path.name}:{n}: output before any command")
            steps[-1][2].append(line)
    return steps


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_golden(script: Path) -> None:
    cluster = Cluster()
    for n, command, expected in parse(script):
        got = run_command(cluster, command)
        assert got == expected, f"{script.name}:{n}: > {command}"


def test_scripts_exist() -> None:
    assert {p.stem for p in SCRIPTS} >= {"elect", "replicate", "partition_leader", "heal"}


def test_interpreter_reports_a_wrong_expectation(tmp_path: Path) -> None:
    """The comparison can fail: a script expecting the wrong leader does not pass."""
    bad = tmp_path / "bad.txt"
    bad.write_text("> campaign 1\n> stabilize\n> status\n1 follower term=1\n")
    cluster = Cluster()
    (_, c1, _), (_, c2, _), (_, c3, expected) = parse(bad)
    run_command(cluster, c1)
    run_command(cluster, c2)
    assert run_command(cluster, c3) != expected


def test_describe_entry() -> None:
    from agent.raft.messages import Entry

    assert describe(Entry(3, 2)) == "3/2 (empty)"
    assert describe(Entry(4, 2, data=b"x")) == "4/2 x"
