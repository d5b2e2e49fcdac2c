"""The dispatch table on its own: built from services, refusing unsound tables, and
checking every sender against the handler's rule. No node, no sockets."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from agent.core.senders import Allow, Sender
from agent.errors import NotAllowed, UnexpectedMessage
from agent.node.dispatch import BadDispatchTable, Dispatch, DuplicateHandler
from agent.node.service import Answer, Handler, Incoming, Service
from agent.record import NodeRecord
from agent.wire import (
    ClusterStatus,
    HealthReport,
    Heartbeat,
    MapUpdate,
    Message,
    ProposeRequest,
    RaftPacket,
    StatusReply,
    StatusRequest,
)

MONITORS = ("n1", "n2", "n3")
admin = Sender("admin", "client")
monitor = Sender("n1", "node")
node4 = Sender("n4", "node")


def _ignore(inc: Incoming) -> Answer:
    return None


class Fixed(Service):
    """A service whose handlers are given to it."""

    log = logging.getLogger("test.dispatch")

    def __init__(self, *handlers: Handler) -> None:
        self._handlers = handlers

    def handlers(self) -> Sequence[Handler]:
        return self._handlers


class Alpha(Fixed):
    name = "alpha"


class Beta(Fixed):
    name = "beta"


def incoming(msg: Message, sender: Sender) -> Incoming:
    return Incoming(msg, (), sender)


def heartbeat(name: str) -> Heartbeat:
    return Heartbeat(
        cluster="c", node=NodeRecord(name=name, address="10.0.0.1"), incarnation=1, seq=1
    )


# handlers of every rule, each answering a different message type
status = Handler(StatusRequest, Allow.ANY, _ignore)
propose = Handler(ProposeRequest, Allow.NODES, _ignore)
raft = Handler(RaftPacket, Allow.MONITORS, _ignore)
report = Handler(HealthReport, Allow.SPEAKER, _ignore, speaker=lambda m: m.reporter)
beat = Handler(Heartbeat, Allow.SPEAKER, _ignore, speaker=lambda m: m.node.name)


@pytest.fixture
def table() -> Dispatch:
    return Dispatch([Alpha(status, raft, beat), Beta(propose, report)])


def test_a_second_handler_for_one_type_is_refused_at_construction_naming_both() -> None:
    other = Handler(StatusRequest, Allow.NODES, _ignore)
    with pytest.raises(DuplicateHandler) as caught:
        Dispatch([Alpha(status, raft), Beta(propose, other)])
    assert str(caught.value) == ("StatusRequest is answered by both the alpha and the beta service")


def test_a_duplicate_within_one_service_is_refused_too() -> None:
    with pytest.raises(DuplicateHandler, match="both the alpha and the alpha service"):
        Dispatch([Alpha(status, Handler(StatusRequest, Allow.ANY, _ignore))])


def test_a_speaker_rule_without_a_speaker_is_refused() -> None:
    mute = Handler(HealthReport, Allow.SPEAKER, _ignore)
    with pytest.raises(BadDispatchTable) as caught:
        Dispatch([Alpha(status), Beta(mute)])
    assert not isinstance(caught.value, DuplicateHandler)
    assert str(caught.value) == (
        "the beta service lets the speaker send HealthReport but does not say who speaks"
    )


def test_a_type_nobody_answers_is_unexpected(table: Dispatch) -> None:
    reply = StatusReply(rid=3, status=ClusterStatus(cluster="c", epoch=0, quorum=None, nodes=()))
    for sender in (admin, monitor):
        with pytest.raises(UnexpectedMessage, match="this node does not answer StatusReply"):
            table.handler_for(incoming(reply, sender), MONITORS, published=False)
    with pytest.raises(UnexpectedMessage, match="does not answer MapUpdate"):
        table.handler_for(
            incoming(MapUpdate(cluster="c", epoch=1), monitor), MONITORS, published=False
        )


@pytest.mark.parametrize(
    ("msg", "rule"),
    [
        (RaftPacket(), "monitors only"),
        (ProposeRequest(rid=1), "nodes only"),
        (HealthReport(reporter="admin"), "the node the message speaks for"),
    ],
)
def test_a_client_may_not_send_node_or_monitor_messages(
    table: Dispatch, msg: Message, rule: str
) -> None:
    with pytest.raises(NotAllowed) as caught:
        table.handler_for(incoming(msg, admin), MONITORS, published=False)
    assert str(caught.value) == f"client admin may not send {type(msg).__name__}: {rule}"


def test_a_node_that_is_no_monitor_may_not_send_a_monitor_message(table: Dispatch) -> None:
    with pytest.raises(NotAllowed) as caught:
        table.handler_for(incoming(RaftPacket(), node4), MONITORS, published=False)
    assert str(caught.value) == "node n4 may not send RaftPacket: monitors only"
    # the same node is a monitor once the monitor list names it
    assert table.handler_for(incoming(RaftPacket(), node4), ("n4",), published=False) is raft


def test_a_node_may_not_speak_for_another(table: Dispatch) -> None:
    with pytest.raises(NotAllowed) as caught:
        table.handler_for(incoming(HealthReport(reporter="n3"), node4), MONITORS, published=False)
    assert str(caught.value) == "node n4 may not send HealthReport that speaks for n3"
    with pytest.raises(NotAllowed, match="node n1 may not send Heartbeat that speaks for n4"):
        table.handler_for(incoming(heartbeat("n4"), monitor), MONITORS, published=False)


def test_the_handler_is_returned_when_the_rule_allows(table: Dispatch) -> None:
    assert (
        table.handler_for(incoming(StatusRequest(rid=1), admin), MONITORS, published=False)
        is status
    )
    assert (
        table.handler_for(incoming(StatusRequest(rid=1), node4), MONITORS, published=False)
        is status
    )
    assert (
        table.handler_for(incoming(ProposeRequest(rid=1), node4), MONITORS, published=False)
        is propose
    )
    assert table.handler_for(incoming(RaftPacket(), monitor), MONITORS, published=False) is raft
    assert (
        table.handler_for(incoming(HealthReport(reporter="n4"), node4), MONITORS, published=False)
        is report
    )
    assert table.handler_for(incoming(heartbeat("n4"), node4), MONITORS, published=False) is beat


def test_the_table_lists_type_service_and_rule_sorted(table: Dispatch) -> None:
    assert table.table() == [
        ("HealthReport", "beta", Allow.SPEAKER),
        ("Heartbeat", "alpha", Allow.SPEAKER),
        ("ProposeRequest", "beta", Allow.NODES),
        ("RaftPacket", "alpha", Allow.MONITORS),
        ("StatusRequest", "alpha", Allow.ANY),
    ]
    assert Dispatch([]).table() == []


def test_a_published_message_is_taken_only_from_a_subscription_and_a_request_only_as_one() -> None:
    class Heard(Service):
        name = "heard"

        def handlers(self) -> list[Handler]:
            return [
                Handler(
                    Heartbeat,
                    Allow.SPEAKER,
                    lambda inc: None,
                    speaker=lambda m: m.node.name,
                    published=True,
                ),
                Handler(StatusRequest, Allow.ANY, lambda inc: None),
            ]

    table = Dispatch([Heard()])
    assert table.handler_for(incoming(heartbeat("n4"), node4), MONITORS, published=True)
    with pytest.raises(UnexpectedMessage, match="Heartbeat is taken only published on a sub"):
        table.handler_for(incoming(heartbeat("n4"), node4), MONITORS, published=False)
    with pytest.raises(UnexpectedMessage, match="StatusRequest is taken only sent as a request"):
        table.handler_for(incoming(StatusRequest(rid=1), node4), MONITORS, published=True)
