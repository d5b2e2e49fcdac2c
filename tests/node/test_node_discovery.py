from __future__ import annotations

from pathlib import Path

import pytest

from agent.enrolment import Allowlist
from agent.keys import create_keyring
from agent.node.discovery import Rejected, admit, txt_record
from agent.record import NodeRecord


@pytest.fixture
def allowlist(tmp_path: Path) -> Allowlist:
    return create_keyring(tmp_path, ["n1", "n2"], ["admin"], cluster="c1")


def props_for(allowlist: Allowlist, who: str, /, **override: str) -> dict[str, str | None]:
    key = allowlist.by_name(who).public  # type: ignore[union-attr]
    props: dict[str, str | None] = dict(txt_record("c1", who, 7100, 7101, key))
    props.update(override)
    return props


def test_enrolled_peer_is_admitted(allowlist: Allowlist) -> None:
    verdict = admit(props_for(allowlist, "n2"), ["10.0.0.2"], allowlist, me="n1")
    assert verdict == NodeRecord(
        name="n2",
        address="10.0.0.2",
        rpc_port=7100,
        pub_port=7101,
        public_key=allowlist.by_name("n2").public,  # type: ignore[union-attr]
    )


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"cluster": "other"}, "not ours"),
        ({"node": "n9"}, "not enrolled"),
        ({"node": "admin"}, "not enrolled"),  # a client key cannot pose as a node
        ({"key": "x" * 40}, "not the enrolled one"),
        ({"rpc": "seven"}, "bad ports"),
        ({"pub": "70000"}, "out of range"),
    ],
)
def test_rejections_say_why(allowlist: Allowlist, override: dict[str, str], why: str) -> None:
    verdict = admit(props_for(allowlist, "n2", **override), ["10.0.0.2"], allowlist, me="n1")
    assert isinstance(verdict, Rejected) and why in verdict.reason


def test_another_nodes_key_under_my_name_is_rejected(allowlist: Allowlist) -> None:
    props = props_for(allowlist, "n2", key=allowlist.by_name("n1").public)  # type: ignore[union-attr]
    assert isinstance(admit(props, ["10.0.0.2"], allowlist, me="n1"), Rejected)


def test_own_announcement_and_missing_address(allowlist: Allowlist) -> None:
    assert isinstance(admit(props_for(allowlist, "n1"), ["10.0.0.1"], allowlist, me="n1"), Rejected)
    assert isinstance(admit(props_for(allowlist, "n2"), [], allowlist, me="n1"), Rejected)
