"""The container invariant: at no instant of true time do two instances of one run.

The simulated runtime tells the ledger of every start and stop at the true instant it
happens; a start while another instance of the same container is live anywhere is a
violation, reported with both instances so the trace can be read from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.sim.checker import Checker


@dataclass(frozen=True, slots=True)
class Run:
    node: str
    container: str
    generation: int
    pid: int
    started: float


@dataclass(slots=True)
class RunLedger:
    checker: Checker
    now: Callable[[], float]
    live: dict[str, dict[tuple[str, int], Run]] = field(default_factory=dict)
    history: list[tuple[Run, float]] = field(default_factory=list)
    """Every finished run with the instant it stopped."""
    starts: int = 0

    def container_started(self, node: str, container: str, generation: int, pid: int) -> None:
        run = Run(node, container, generation, pid, self.now())
        others = self.live.setdefault(container, {})
        self.starts += 1
        self.checker.guard(self._check, run, list(others.values()))
        others[(node, pid)] = run

    def _check(self, run: Run, others: list[Run]) -> None:
        for other in others:
            raise self.checker.fail(
                f"container {run.container} runs twice: generation {run.generation} starts on "
                f"{run.node} while generation {other.generation} has run on {other.node} "
                f"since t={other.started:.3f}"
            )

    def container_stopped(self, node: str, container: str, pid: int) -> None:
        run = self.live.get(container, {}).pop((node, pid), None)
        if run is not None:
            self.history.append((run, self.now()))

    def running(self, container: str) -> list[Run]:
        return sorted(self.live.get(container, {}).values(), key=lambda r: r.started)
