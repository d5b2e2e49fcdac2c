from __future__ import annotations

from pathlib import Path

from agent.node import events
from agent.node.events import JsonlEvents, read_events


def test_events_are_json_lines_on_the_given_clock_and_a_torn_line_is_skipped(
    tmp_path: Path,
) -> None:
    ticks = iter([1.5, 2.25])
    sink = JsonlEvents(tmp_path / "ev" / "events.jsonl", "n1", lambda: next(ticks))
    sink("container_start", container="web", generation=3)
    sink("lease_held")
    with (tmp_path / "ev" / "events.jsonl").open("a") as f:
        f.write('{"t": 3.0, "node": "n1", "ki')  # the agent was killed mid-line
    got = read_events(tmp_path / "ev" / "events.jsonl")
    assert got == [
        {"t": 1.5, "node": "n1", "kind": "container_start", "container": "web", "generation": 3},
        {"t": 2.25, "node": "n1", "kind": "lease_held"},
    ]
    assert read_events(tmp_path / "missing.jsonl") == []


def test_a_full_log_is_cut_in_half_keeping_whole_lines(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(events, "MAX_EVENTS_BYTES", 400)
    sink = JsonlEvents(tmp_path / "events.jsonl", "n1", lambda: 1.0)
    for i in range(40):
        sink("tick", i=i)
    got = read_events(tmp_path / "events.jsonl")
    assert 5 < len(got) < 40 and got[-1]["i"] == 39
    assert [e["i"] for e in got] == list(range(got[0]["i"], 40))  # contiguous, whole lines
