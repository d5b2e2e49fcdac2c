"""The whole-node simulation: real services on a simulated network and clock."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from functools import partial

import pytest

from agent.config import TimingConfig
from agent.sim.broken import NoLeaseWait, broken_tally
from agent.sim.checker import Violation
from agent.sim.run import run_seed, run_seeds
from agent.sim.world import SimConfig, World

SEEDS = int(os.environ.get("RACK_SIM_SEEDS", "300"))
CHUNK = 50


@pytest.mark.parametrize("start", range(0, SEEDS, CHUNK), ids=lambda s: f"seeds{s}-{s + CHUNK - 1}")
def test_seeds_hold_every_invariant(start: int) -> None:
    summary = run_seeds(min(CHUNK, SEEDS - start), start=start)
    assert summary.violations == 0, summary.first_violation
    assert summary.probe_max_s is not None and summary.probe_max_s > 0.9  # the probes ran


def test_a_run_forms_the_rack_survives_chaos_and_times_its_probes() -> None:
    stats = run_seed(2)
    assert stats.kills >= 2 and stats.partitions >= 1 and stats.elections >= 1
    assert len(stats.probe_seconds) == 2 and stats.downs_committed >= 2
    assert all(0.9 < t <= b for t, b in zip(stats.probe_seconds, stats.probe_bounds, strict=True))
    assert len(stats.failover_seconds) == 2 and all(t > 0.5 for t in stats.failover_seconds)
    assert stats.container_starts >= 4  # two containers, each moved at least once


def test_the_checker_catches_monitors_that_do_not_wait_out_a_lease() -> None:
    caught = []
    for seed in range(20):
        try:
            run_seed(seed, lease_table_factory=NoLeaseWait)
        except Violation as exc:
            caught.append(exc)
    assert len(caught) >= 4, [str(c) for c in caught]
    assert all("runs twice" in c.what for c in caught), [str(c) for c in caught]


def test_the_checker_catches_a_vote_that_counts_one_report_as_a_majority() -> None:
    tally = partial(broken_tally, "single-report-vote")
    caught = []
    for seed in range(20):
        try:
            run_seed(seed, tally_factory=tally)
        except Violation as exc:
            caught.append(exc)
    assert len(caught) >= 15, [str(c) for c in caught]
    assert any("heard it throughout" in c.what for c in caught)


def test_the_bound_catches_a_vote_that_comes_too_late() -> None:
    with pytest.raises(Violation, match=r"over the bound|not voted down within"):
        run_seed(3, tally_factory=partial(broken_tally, "late-vote"))


def _sim(*args: str, hash_seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run(
        [sys.executable, "-m", "agent.sim", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def _without_wall_time(out: str) -> list[str]:
    lines = out.splitlines()
    last = json.loads(lines[-1])
    last.pop("seconds", None)
    return [*lines[:-1], json.dumps(last)]


def test_a_seed_replays_exactly_in_another_process() -> None:
    first = _sim("--seed", "11", "--trace", hash_seed="1")
    second = _sim("--seed", "11", "--trace", hash_seed="2")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert len(first.stdout.splitlines()) > 100
    assert _without_wall_time(first.stdout) == _without_wall_time(second.stdout)


def test_json_is_one_line_with_the_contract_fields() -> None:
    ok = _sim("--seeds", "3", "--json")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert set(out) == {"seeds", "violations", "runs_per_s", "first_failing_seed"}
    assert (out["seeds"], out["violations"], out["first_failing_seed"]) == (3, 0, None)
    assert out["runs_per_s"] > 0


def test_a_failing_seed_is_named_and_replays_to_the_same_violation() -> None:
    bad = _sim("--seeds", "4", "--json", "--broken", "single-report-vote")
    assert bad.returncode == 1
    seed = json.loads(bad.stdout)["first_failing_seed"]
    assert isinstance(seed, int)
    again = [_sim("--seed", str(seed), "--broken", "single-report-vote") for _ in range(2)]
    verdicts = [json.loads(r.stdout) for r in again]
    assert verdicts[0] == verdicts[1] and verdicts[0]["ok"] is False
    assert verdicts[0]["violation"].startswith(f"seed {seed} at t=")


class _OutScenario(World):
    """Form the rack, pull n5's power for good, and see it go from down to out."""

    async def _main(self) -> None:
        for name in self.names:
            self.boot(name)
        await self.wait_formed("the rack never formed")
        self.kill("n5")
        self.states: list[str] = []
        for _ in range(100):
            await asyncio.sleep(0.1)
            leader = next(
                n for n in self.nodes.values() if n.services.monitor and n.services.monitor.leads
            )
            state = leader.services.monitor.cmap.nodes["n5"].state  # type: ignore[union-attr]
            if not self.states or self.states[-1] != state:
                self.states.append(state)
            if state == "out":
                return


def test_a_node_down_for_out_after_goes_out_on_the_leaders_wall_clock() -> None:
    world = _OutScenario(5, SimConfig(timing=TimingConfig(out_after=3.0)))
    world.run()
    assert world.states == ["up", "down", "out"]
