"""The lease inequality, checked on the pure sides with clocks at the drift bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.lease import LeaseHolder, LeaseTable, LeaseTerms

TERMS = LeaseTerms(ttl=1.0, rho=0.01, margin=0.05, stop_time=0.1)


def test_a_lease_needs_a_majority_and_counts_from_the_send() -> None:
    holder = LeaseHolder(TERMS, quorum=2)
    first = holder.sending(10.0)
    second = holder.sending(10.1)
    assert not holder.granted(second, "m1", epoch=7)
    assert not holder.holds(10.2)  # one monitor is not a majority
    assert holder.granted(second, "m2", epoch=5)
    assert holder.stop_by == pytest.approx(10.1 + 0.99 - 0.1)
    holder.granted(first, "m1", epoch=3)
    assert not holder.granted(first, "m3", epoch=3)  # older: it never shortens nor extends
    assert holder.stop_by == pytest.approx(10.99) and holder.epoch == 7
    assert holder.holds(10.5) and not holder.holds(10.99)
    assert holder.holds(10.5, ahead=0.3) and not holder.holds(10.5, ahead=0.5)
    assert not holder.granted(second, "m2", epoch=7)  # the same grant twice adds nothing
    holder.drop()
    assert not holder.holds(10.2)


def test_renewals_older_than_a_lease_are_forgotten() -> None:
    holder = LeaseHolder(TERMS, quorum=2)
    old = holder.sending(0.0)
    holder.sending(5.0)
    holder.granted(old, "m1", epoch=1)
    assert not holder.granted(old, "m2", epoch=1) and not holder.holds(0.5)


def test_a_monitor_releases_a_ttl_after_its_last_grant_or_its_start() -> None:
    table = LeaseTable(TERMS, started_at=100.0)
    assert not table.released("n1", 101.05) and table.released("n1", 101.061)
    table.granted("n2", 101.0)
    assert not table.released("n2", 102.05) and table.released("n2", 102.07)
    assert table.released("n1", 102.07)


def test_terms_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="no time to run"):
        LeaseTerms(ttl=0.1, rho=0.01, margin=0.0, stop_time=0.1)
    with pytest.raises(ValueError, match="not plausible"):
        LeaseTerms(ttl=1.0, rho=0.5, margin=0.0, stop_time=0.1)


@given(
    node_rate=st.floats(1 - TERMS.rho, 1 + TERMS.rho),
    monitor_rates=st.tuples(*[st.floats(1 - TERMS.rho, 1 + TERMS.rho)] * 3),
    send=st.floats(0, 100),
    delays=st.tuples(*[st.floats(0, 2)] * 3),
    granting=st.sets(st.sampled_from([0, 1, 2]), min_size=2),
    releasing=st.sets(st.sampled_from([0, 1, 2]), min_size=2),
)
def test_in_real_time_the_node_has_stopped_before_a_majority_releases(
    *,
    node_rate: float,
    monitor_rates: tuple[float, float, float],
    send: float,
    delays: tuple[float, float, float],
    granting: set[int],
    releasing: set[int],
) -> None:
    """Real time t: the node's clock reads node_rate*t, monitor i's monitor_rates[i]*t.
    Monitor i grants ``delays[i]`` after the send. Whichever majority grants and
    whichever majority releases, the node's kill is done before the release."""
    holder = LeaseHolder(TERMS, quorum=2)
    seq = holder.sending(node_rate * send)
    for i in sorted(granting):
        holder.granted(seq, f"m{i}", epoch=1)
    killed_real = (holder.stop_by + TERMS.stop_time) / node_rate
    releases = []
    for i in releasing:
        table = LeaseTable(TERMS, started_at=float("-inf"))
        if i in granting:
            table.granted("n1", monitor_rates[i] * (send + delays[i]))
        releases.append(table.released_at("n1") / monitor_rates[i])
    assert killed_real <= max(releases)
