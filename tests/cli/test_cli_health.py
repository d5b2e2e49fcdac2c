"""``rack health``: the deployment gate's logic, on hand-built cluster views.

The views are real ``ClusterStatus`` values; the client in the ``wait_healthy`` tests is a
small stand-in that answers with a given view (or fails), as the status RPC would.
"""

from __future__ import annotations

import argparse
import json
import time
from types import TracebackType

import msgspec
import pytest

from agent.cli.health import NotHealthy, cmd_health, missing, parse_running, wait_healthy
from agent.errors import RackError, Unreachable
from agent.record import NodeRecord
from agent.wire import ClusterStatus, DiskSummary, NodeStatus, Quorum

DISK = DiskSummary(path="/d0", total_bytes=100, free_bytes=50)


def node(name: str, state: str = "up", version: str | None = "0.1") -> NodeStatus:
    rec = NodeRecord(name=name, address="10.0.0.1")
    return NodeStatus(
        **msgspec.structs.asdict(rec),
        state=state,
        last_heartbeat_age_s=0.1 if state == "up" else 9.0,
        osds=(DISK,) if state == "up" else (),
        in_map=True,
        osd_ids=(1,),
        version=version,
        incarnation=1,
    )


def view(*nodes: NodeStatus, leader: str | None = "n1") -> ClusterStatus:
    return ClusterStatus(
        cluster="c",
        epoch=7,
        quorum=Quorum(leader=leader, term=2, members=("n1", "n2", "n3")),
        nodes=nodes,
        answered_by="n1",
    )


FORMED = view(node("n1"), node("n2"), node("n3"))
N2_DOWN = view(node("n1"), node("n2", state="down"), node("n3"))


class StandIn:
    """Answers ``status`` with each of ``answers`` in turn (the last one from then on)."""

    def __init__(self, *answers: ClusterStatus | RackError) -> None:
        self.answers = list(answers)
        self.calls: list[float | None] = []

    def status(self, timeout: float | None = None) -> ClusterStatus:
        self.calls.append(timeout)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, RackError):
            raise answer
        return answer

    def __enter__(self) -> StandIn:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


# ---- missing --------------------------------------------------------------------------------


def test_a_formed_view_lacks_nothing() -> None:
    assert missing(FORMED, None, {}) == []
    assert missing(FORMED, ["n1", "n2", "n3"], {"n1": "0.1", "n2": "0.1"}) == []


def test_a_node_down_is_named() -> None:
    assert missing(N2_DOWN, None, {}) == ["n1 does not see n2 up"]
    assert missing(N2_DOWN, ["n1", "n3"], {}) == []  # n2 is not expected
    assert missing(N2_DOWN, ["n1", "n2"], {}) == ["n1 does not see n2 up"]


def test_a_node_at_another_version_is_named() -> None:
    assert missing(FORMED, None, {"n1": "0.2"}) == ["n1 runs version 0.1, not 0.2"]


def test_an_unknown_version_is_said_so() -> None:
    silent = view(node("n1"), node("n2", version=None), node("n3"))
    assert missing(silent, None, {"n2": "0.1"}) == ["n2 runs version unknown, not 0.1"]
    assert missing(FORMED, None, {"n7": "0.1"}) == ["n7 runs version unknown, not 0.1"]


def test_everything_lacking_is_listed_forming_first_then_versions_by_name() -> None:
    lacks = missing(N2_DOWN, None, {"n3": "0.2", "n1": "0.2"})
    assert lacks == [
        "n1 does not see n2 up",
        "n1 runs version 0.1, not 0.2",
        "n3 runs version 0.1, not 0.2",
    ]


# ---- parse_running --------------------------------------------------------------------------


def test_parse_running() -> None:
    assert parse_running([]) == {}
    assert parse_running(["n1=0.2", "n2=0.3.1"]) == {"n1": "0.2", "n2": "0.3.1"}
    assert parse_running(["n1=0.1", "n1=0.2"]) == {"n1": "0.2"}  # the last one counts


@pytest.mark.parametrize("item", ["n1", "=1", "n1=", "="])
def test_parse_running_refuses_what_is_not_node_equals_version(item: str) -> None:
    with pytest.raises(RackError) as info:
        parse_running(["n2=0.1", item])
    assert str(info.value) == f"--running takes NODE=VERSION, not {item!r}"


# ---- wait_healthy ---------------------------------------------------------------------------


def test_a_healthy_rack_is_returned_at_the_first_answer() -> None:
    client = StandIn(FORMED)
    assert wait_healthy(client, 5.0, None, {}) is FORMED  # type: ignore[arg-type]
    assert client.calls == [1.0]


def test_a_rack_that_stays_unhealthy_is_not_healthy_after_the_wait() -> None:
    client = StandIn(N2_DOWN)
    t0 = time.monotonic()
    with pytest.raises(NotHealthy) as info:
        wait_healthy(client, 0.3, None, {})  # type: ignore[arg-type]
    assert time.monotonic() - t0 >= 0.3
    assert str(info.value) == "the rack is not healthy after 0.3 s: n1 does not see n2 up"
    assert 2 <= len(client.calls) <= 5  # it asked again while it waited, every 0.2 s


def test_not_healthy_names_every_lack() -> None:
    client = StandIn(N2_DOWN)
    with pytest.raises(NotHealthy) as info:
        wait_healthy(client, 0.0, None, {"n1": "0.2"})  # type: ignore[arg-type]  # --wait is a float
    assert str(info.value) == (
        "the rack is not healthy after 0 s: n1 does not see n2 up; n1 runs version 0.1, not 0.2"
    )
    assert len(client.calls) == 1  # --wait 0 asks once


def test_an_agent_that_does_not_answer_is_the_reason() -> None:
    client = StandIn(Unreachable("no agent of the client config answered"))
    with pytest.raises(NotHealthy) as info:
        wait_healthy(client, 0.0, None, {})  # type: ignore[arg-type]
    assert str(info.value) == (
        "the rack is not healthy after 0 s: no agent of the client config answered"
    )


def test_a_rack_that_becomes_healthy_within_the_wait_passes() -> None:
    client = StandIn(Unreachable("nobody answered"), N2_DOWN, FORMED)
    assert wait_healthy(client, 30.0, None, {}) is FORMED  # type: ignore[arg-type]
    assert len(client.calls) == 3


def test_cmd_health_expects_only_the_named_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    n3_down = view(node("n1"), node("n2"), node("n3", state="down"))
    args = argparse.Namespace(wait=0.0, expect="n1,n2", running=["n1=0.1"], json=True)
    assert cmd_health(args, lambda: StandIn(n3_down)) == 0  # type: ignore[arg-type,return-value]
    data = json.loads(capsys.readouterr().out)
    assert data["healthy"] is True and data["leader"] == "n1" and data["epoch"] == 7
    assert [(n["name"], n["state"]) for n in data["nodes"]] == [
        ("n1", "up"),
        ("n2", "up"),
        ("n3", "down"),
    ]
    args = argparse.Namespace(wait=0.0, expect=None, running=[], json=False)
    with pytest.raises(NotHealthy, match="n1 does not see n3 up"):
        cmd_health(args, lambda: StandIn(n3_down))  # type: ignore[arg-type,return-value]
    assert cmd_health(args, lambda: StandIn(FORMED)) == 0  # type: ignore[arg-type,return-value]
    assert capsys.readouterr().out == "rack healthy: 3 nodes up, leader n1, as n1 sees it\n"
