from __future__ import annotations

import pytest

from agent.core.senders import Allow, Sender, refusal

MONITORS = {"n1", "n2", "n3"}
admin = Sender("admin", "client")
mon = Sender("n1", "node")
node = Sender("n4", "node")


def check(allow: Allow, sender: Sender, speaks_for: str | None = None) -> str | None:
    return refusal(allow, sender, "Thing", monitors=MONITORS, speaks_for=speaks_for)


def test_any_enrolled_key_may_ask() -> None:
    assert check(Allow.ANY, admin) is None and check(Allow.ANY, node) is None


@pytest.mark.parametrize("allow", [Allow.NODES, Allow.MONITORS, Allow.SPEAKER])
def test_a_client_may_not_pose_as_a_node(allow: Allow) -> None:
    why = check(allow, admin, speaks_for="admin")
    assert why is not None and why.startswith("client admin may not send Thing")


def test_only_monitors_may_send_monitor_messages() -> None:
    assert check(Allow.MONITORS, mon) is None
    assert check(Allow.MONITORS, node) == "node n4 may not send Thing: monitors only"
    assert check(Allow.NODES, node) is None


def test_a_node_speaks_only_for_itself() -> None:
    assert check(Allow.SPEAKER, node, speaks_for="n4") is None
    assert check(Allow.SPEAKER, node, speaks_for="n2") == (
        "node n4 may not send Thing that speaks for n2"
    )
