"""The lease inequality, checked on the pure sides with clocks at the drift bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.lease import LeaseHolder, LeaseTable, LeaseTerms

TERMS = LeaseTerms(ttl=1.0, rho=0.01, margin=0.05, stop_time=0.1)


def test_the_holder_counts_from_the_send_and_ignores_stale_answers() -> None:
    holder = LeaseHolder(TERMS)
    first = holder.sending(10.0)
    second = holder.sending(10.1)
    holder.granted(second, epoch=7)
    assert holder.stop_by == pytest.approx(10.1 + 0.99 - 0.1)
    holder.granted(first, epoch=3)  # older, answered late: dropped, never shortens
    assert holder.stop_by == pytest.approx(10.99) and holder.epoch == 7
    assert holder.holds(10.5) and not holder.holds(10.99)
    assert holder.holds(10.5, ahead=0.3) and not holder.holds(10.5, ahead=0.5)
    holder.drop()
    assert not holder.holds(10.2)


def test_a_new_leader_waits_a_full_ttl_from_its_election() -> None:
    table = LeaseTable(TERMS)
    assert not table.expired("n1", 1e9)  # not leading: nothing is ever expired
    table.elected(100.0)
    assert not table.expired("n1", 101.05) and table.expired("n1", 101.061)
    table.granted("n2", 101.0)
    assert not table.expired("n2", 102.05) and table.expired("n2", 102.07)
    table.deposed()
    assert not table.expired("n2", 1e9)


def test_terms_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="no time to run"):
        LeaseTerms(ttl=0.1, rho=0.01, margin=0.0, stop_time=0.1)
    with pytest.raises(ValueError, match="not plausible"):
        LeaseTerms(ttl=1.0, rho=0.5, margin=0.0, stop_time=0.1)


@given(
    node_rate=st.floats(1 - TERMS.rho, 1 + TERMS.rho),
    monitor_rate=st.floats(1 - TERMS.rho, 1 + TERMS.rho),
    send=st.floats(0, 100),
    delay=st.floats(0, 2),
)
def test_in_real_time_the_node_stops_before_the_monitor_may_reassign(
    node_rate: float, monitor_rate: float, send: float, delay: float
) -> None:
    """Real time t: node clock reads node_rate*t, monitor clock monitor_rate*t. The grant
    happens ``delay`` after the send; the node must be stopped before reassignment."""
    holder = LeaseHolder(TERMS)
    holder.granted(holder.sending(node_rate * send), epoch=1)
    stopped_real = holder.stop_by / node_rate + TERMS.stop_time / node_rate
    table = LeaseTable(TERMS)
    table.elected(float("-inf"))
    table.granted("n1", monitor_rate * (send + delay))
    reassign_real = table.expires_at("n1") / monitor_rate
    assert stopped_real <= reassign_real
