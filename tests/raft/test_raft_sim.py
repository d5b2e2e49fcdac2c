"""The deterministic simulator: thousands of seeds clean, and proof that it catches bugs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from agent.raft import HardState, LogStore, RaftNode, VoteResp
from agent.raft.sim import InvariantViolation, SimConfig, Simulation, main, run_seed
from agent.raft.storage import DiskStorage

SEEDS = 2000
CHUNK = 250


@pytest.mark.parametrize("start", range(0, SEEDS, CHUNK), ids=lambda s: f"seeds{s}-{s + CHUNK - 1}")
def test_seeds_hold_every_invariant(start: int) -> None:
    for seed in range(start, start + CHUNK):
        run_seed(seed)  # raises InvariantViolation naming the seed and step


def test_runs_exercise_the_interesting_paths() -> None:
    """Guard against a simulator that passes because it does nothing."""
    totals: dict[str, int] = {}
    for seed in range(100):
        for k, v in run_seed(seed).stats.items():
            totals[k] = totals.get(k, 0) + v
    for key in (
        "elections",
        "crashes",
        "partitions",
        "transfers",
        "conf_changes",
        "compactions",
        "snapshots_sent",
        "restores",
    ):
        assert totals[key] > 0, key
    assert totals["committed"] > 1000
    assert totals["elections"] > 150  # more than one election per run on average


def test_replay_is_exact() -> None:
    first: list[str] = []
    second: list[str] = []
    run_seed(7, trace=first.append)
    run_seed(7, trace=second.append)
    assert first == second and len(first) > 100


# -- the checker catches deliberately broken cores ------------------------------------------
class CommitWithoutMajority(RaftNode):
    """Commits whatever the leader holds, as if it alone were a majority."""

    def _maybe_commit(self) -> bool:
        n = self.log.last_index
        if n > self.log.committed and self.log.term(n) == self.term:
            self.log.commit_to(n)
            return True
        return False


class VotesForEveryone(RaftNode):
    def _handle_vote_request(self, m: Any) -> None:
        self._send(VoteResp(self.id, m.src, m.term, pre=m.pre, granted=True))
        if not m.pre:
            self.vote = m.src


class ForgetsItsVote(RaftNode):
    """Keeps its vote in memory but never persists it."""

    def _hard_state(self) -> HardState:
        return HardState(self.term, None, self.log.committed)


class NeverCampaigns(RaftNode):
    def _campaign(self, transfer: bool) -> None:
        return


def first_violation(factory: type[RaftNode], seeds: range) -> InvariantViolation:
    for seed in seeds:
        try:
            run_seed(seed, node_factory=factory)
        except InvariantViolation as exc:
            assert exc.seed == seed
            return exc
    pytest.fail(f"{factory.__name__} survived seeds {seeds.start}..{seeds.stop - 1}")


def test_catches_commit_without_majority() -> None:
    exc = first_violation(CommitWithoutMajority, range(50))
    assert f"seed {exc.seed}, step {exc.step}" in str(exc)
    assert f"--seed {exc.seed}" in str(exc)


def test_catches_double_voting() -> None:
    exc = first_violation(VotesForEveryone, range(50))
    # Two leaders in one term; which check trips first depends on the seed.
    assert any(w in exc.what for w in ("two leaders", "log matching", "committed", "lacks"))


def test_catches_a_vote_that_is_not_persisted() -> None:
    first_violation(ForgetsItsVote, range(400))


def test_catches_lost_liveness() -> None:
    exc = first_violation(NeverCampaigns, range(3))
    assert "no liveness" in exc.what


def test_violation_replays_at_the_same_step() -> None:
    exc = first_violation(CommitWithoutMajority, range(50))
    with pytest.raises(InvariantViolation) as again:
        run_seed(exc.seed, node_factory=CommitWithoutMajority)
    assert (again.value.step, again.value.what) == (exc.step, exc.what)


# -- the real disk store under the simulator -------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3, 11])
def test_simulation_on_disk_storage(tmp_path: Path, seed: int) -> None:
    def store(node_id: int, old: LogStore | None) -> LogStore:
        if isinstance(old, DiskStorage):
            old.close()  # a restart reopens the files, repairing any torn tail
        return DiskStorage(tmp_path / str(node_id), fsync=False)

    cfg = SimConfig(chaos_ticks=120)
    Simulation(seed, cfg, store_factory=store).run()


# -- command line -----------------------------------------------------------------------------
def test_cli_replays_one_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seed"] == 5 and out["ok"] is True


def test_cli_runs_many(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs", "20", "--start", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 20 and out["failures"] == 0 and out["runs_per_second"] > 0


@pytest.mark.soak
def test_soak_100k_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    start = int(os.environ.get("RACK_SOAK_START", "0"))
    runs = int(os.environ.get("RACK_SOAK_RUNS", "100000"))
    rc = main(["--runs", str(runs), "--start", str(start), "--jobs", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
