"""Unit tests of the pure Raft core, driven through the deterministic harness."""

from __future__ import annotations

import functools
import random

import msgspec
import pytest

from agent.errors import RackError
from agent.raft import (
    AppendEntries,
    AppendResp,
    ConfChangeRejected,
    ConfOp,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    LeaderTransferring,
    NotLeader,
    PersistentState,
    QuorumLost,
    RaftHeartbeat,
    RaftHeartbeatResp,
    RaftNode,
    RaftRole,
    RequestVote,
    Snapshot,
    TimeoutNow,
    VoteResp,
    decode_conf_change,
    decode_message,
    encode_message,
)
from agent.raft.harness import Cluster, MaxRandom
from agent.raft.log import LogInvariantError, RaftLog
from agent.raft.messages import ConfChange, encode_conf_change


def elected(ids: tuple[int, ...] = (1, 2, 3), **kw: object) -> Cluster:
    c = Cluster(ids, **kw)  # type: ignore[arg-type]
    c.nodes[ids[0]].campaign()
    c.stabilize()
    assert c.leader() == ids[0]
    return c


def node(
    id: int = 1,
    peers: tuple[int, ...] = (1, 2, 3),
    state: PersistentState | None = None,
) -> RaftNode:
    return RaftNode(id, peers, state or PersistentState(), MaxRandom(0), 10, 1)


def drain(n: RaftNode) -> list[object]:
    rd = n.ready()
    n.advance()
    return list(rd.messages)


def make_leader(n: RaftNode) -> None:
    """Win an election for ``n`` by feeding it the votes directly."""
    n.campaign()
    for m in drain(n):
        assert isinstance(m, RequestVote)
        n.step(VoteResp(m.dst, n.id, m.term, pre=m.pre, granted=True))
        if n.role == RaftRole.CANDIDATE:
            break
    for m in drain(n):
        if isinstance(m, RequestVote) and not m.pre:
            n.step(VoteResp(m.dst, n.id, m.term, pre=False, granted=True))
    assert n.role == RaftRole.LEADER


# -- elections ------------------------------------------------------------------------
def test_elect_by_campaign() -> None:
    c = elected()
    assert [c.nodes[i].role for i in (1, 2, 3)] == [
        RaftRole.LEADER,
        RaftRole.FOLLOWER,
        RaftRole.FOLLOWER,
    ]
    assert all(n.term == 1 and n.lead == 1 for n in c.nodes.values())


@pytest.mark.parametrize("seed", range(5))
def test_elect_by_timeout_with_random_timers(seed: int) -> None:
    c = Cluster((1, 2, 3, 4, 5), rng=lambda i: random.Random(seed * 100 + i))
    for _ in range(60):
        c.tick(None, 1)
        if c.leader() is not None:
            break
    lead = c.leader()
    assert lead is not None
    assert all(n.lead == lead for n in c.nodes.values())
    assert len({n.term for n in c.nodes.values()}) == 1


def test_vote_is_persisted_before_the_grant_is_sent() -> None:
    n = node(2)
    n.step(RequestVote(1, 2, 1, last_index=0, last_term=0))
    rd = n.ready()
    assert rd.hard_state == HardState(term=1, vote=1, commit=0)
    assert rd.messages == (VoteResp(2, 1, 1, pre=False, granted=True),)


def test_one_vote_per_term() -> None:
    n = node(3)
    n.step(RequestVote(1, 3, 1, last_index=0, last_term=0))
    drain(n)
    n.step(RequestVote(2, 3, 1, last_index=0, last_term=0))
    assert drain(n) == [VoteResp(3, 2, 1, pre=False, granted=False)]


def test_vote_refused_to_a_less_up_to_date_log() -> None:
    state = PersistentState(HardState(2, None, 0), None, (Entry(1, 1), Entry(2, 2)))
    n = node(3, state=state)
    n.step(RequestVote(1, 3, 3, last_index=5, last_term=1))  # longer but older
    assert drain(n) == [VoteResp(3, 1, 3, pre=False, granted=False)]


def test_pre_vote_does_not_change_term_or_vote() -> None:
    n = node(2)
    n.step(RequestVote(1, 2, 1, last_index=0, last_term=0, pre=True))
    rd = n.ready()
    assert rd.hard_state is None
    assert rd.messages == (VoteResp(2, 1, 1, pre=True, granted=True),)
    assert n.term == 0


def test_pre_vote_blocks_a_partitioned_node_from_disrupting() -> None:
    c = elected()
    c.isolate(3)
    c.tick([3], 200)
    assert c.nodes[3].term == 1  # never raised its term while alone
    c.heal()
    c.tick([1], 1)
    assert c.leader() == 1
    assert all(n.term == 1 for n in c.nodes.values())


def test_without_pre_vote_the_partitioned_node_disrupts() -> None:
    """Control for the test above: the same scenario without pre-vote bumps terms."""
    c = elected(node_factory=functools.partial(RaftNode, pre_vote=False))
    c.isolate(3)
    c.tick([3], 200)
    assert c.nodes[3].term > 1


def test_check_quorum_leader_steps_down() -> None:
    c = elected()
    c.isolate(1)
    c.tick([1], 9)
    assert c.nodes[1].status().startswith("1 leader ")
    c.tick([1], 1)
    assert c.nodes[1].status().startswith("1 follower ")
    with pytest.raises(NotLeader) as err:
        c.nodes[1].propose(b"x")
    assert err.value.leader is None


def test_healthy_leader_keeps_leading() -> None:
    c = elected()
    c.tick(None, 100)
    assert c.leader() == 1 and c.nodes[1].term == 1


def test_stale_leader_learns_new_term_from_a_follower_reply() -> None:
    c = elected()
    c.isolate(1)
    c.tick([2, 3], 10)
    c.nodes[2].campaign()
    c.stabilize()
    c.heal()
    c.tick([1], 1)  # node 1's heartbeat (term 1) is answered with term 2
    assert c.nodes[1].role == RaftRole.FOLLOWER and c.nodes[1].term == 2


# -- proposals and errors ----------------------------------------------------------------
def test_not_leader_names_the_leader() -> None:
    c = elected()
    with pytest.raises(NotLeader) as err:
        c.nodes[2].propose(b"x")
    assert err.value.leader == 1
    assert str(err.value) == "this node is not the leader; node 1 is"
    assert isinstance(err.value, RackError)


def test_quorum_lost_before_step_down() -> None:
    c = elected()
    c.isolate(1)
    c.tick([1], 5)
    with pytest.raises(QuorumLost) as err:
        c.nodes[1].propose(b"x")
    assert (err.value.reachable, err.value.total) == (1, 3)
    assert not str(err.value).endswith(".") and "\n" not in str(err.value)


def test_replicate_and_apply_in_order() -> None:
    c = elected()
    for word in (b"a", b"b", b"c"):
        c.nodes[1].propose(word)
    c.stabilize()
    for i in (1, 2, 3):
        assert [d for _, _, d in c.applied[i]] == [b"a", b"b", b"c"]


def test_commit_only_entries_of_the_current_term() -> None:
    """Raft 5.4.2: a majority holding an older-term entry does not commit it."""
    log = (Entry(1, 1), Entry(2, 2))
    n = node(1, state=PersistentState(HardState(2, None, 1), None, log))
    make_leader(n)
    assert n.term == 3 and n.log.last_index == 3  # the new leader's empty entry
    drain(n)
    n.step(AppendResp(2, 1, 3, index=2))  # follower 2 holds index 2 (term 2)
    assert n.log.committed == 1  # majority {1, 2} has entry 2, but it is of term 2
    n.step(AppendResp(2, 1, 3, index=3))
    assert n.log.committed == 3  # committing 3 (term 3) commits 2 with it


def test_conflicting_follower_log_is_overwritten() -> None:
    c = elected()
    c.isolate(1)
    for i in range(5):
        c.nodes[1].propose(b"old%d" % i)
    c.flush()
    c.tick([2, 3], 10)
    c.nodes[2].campaign()
    c.stabilize()
    c.nodes[2].propose(b"new")
    c.stabilize()
    c.heal()
    c.tick([2], 1)
    assert c.nodes[1].log.entries == c.nodes[2].log.entries
    assert [d for _, _, d in c.applied[1]] == [b"new"]


def test_fast_backtracking_skips_a_whole_term() -> None:
    """A 40-entry conflicting tail is resolved in a couple of round trips, not 40."""
    c = elected()
    c.isolate(1)
    for i in range(40):
        c.nodes[1].propose(b"x%d" % i)
    c.flush()
    c.tick([2, 3], 10)
    c.nodes[2].campaign()
    c.stabilize()
    c.heal()
    rejects = 0
    original_step = c.nodes[2].step

    def counting(msg: object) -> None:
        nonlocal rejects
        if isinstance(msg, AppendResp) and msg.reject:
            rejects += 1
        original_step(msg)  # type: ignore[arg-type]

    c.nodes[2].step = counting  # type: ignore[method-assign]
    c.tick([2], 1)
    assert c.nodes[1].log.entries == c.nodes[2].log.entries
    assert rejects <= 2


def test_follower_rejects_with_a_conflict_hint() -> None:
    state = PersistentState(HardState(2, None, 1), None, (Entry(1, 1), Entry(2, 1), Entry(3, 1)))
    n = node(2, state=state)
    n.step(AppendEntries(1, 2, 3, prev_index=5, prev_term=3, entries=(), commit=1))
    (resp,) = drain(n)
    assert resp == AppendResp(2, 1, 3, index=5, reject=True, hint_index=3, hint_term=1)


def test_follower_never_truncates_committed_entries() -> None:
    log = RaftLog(None, [Entry(1, 1), Entry(2, 1)], 2, (1, 2, 3))
    with pytest.raises(LogInvariantError):
        log.truncate_from(2)


# -- snapshots ---------------------------------------------------------------------------
def test_snapshot_install_for_a_lagging_follower() -> None:
    c = elected()
    c.crash(3)
    for i in range(10):
        c.nodes[1].propose(b"v%d" % i)
    c.stabilize()
    c.compact(1)
    assert c.nodes[1].log.snap_index == 11 and c.nodes[1].log.entries == []
    c.restart(3)
    c.tick([1], 1)
    n3 = c.nodes[3]
    assert n3.log.snap_index == 11 and n3.log.committed == 11
    assert c.applied[3] == c.applied[1]
    assert c.stores[3].snapshot is not None and c.stores[3].snapshot.index == 11


def test_compact_requires_applied_index() -> None:
    c = elected()
    with pytest.raises(ValueError, match="applied"):
        c.nodes[1].compact(5, b"")
    assert c.nodes[1].compact(0, b"") is None


def test_snapshot_older_than_commit_is_ignored() -> None:
    c = elected()
    c.nodes[1].propose(b"a")
    c.stabilize()
    n2 = c.nodes[2]
    n2.step(InstallSnapshot(1, 2, 1, snapshot=Snapshot(1, 1, (1, 2, 3), b"")))
    rd = n2.ready()
    n2.advance()
    assert rd.snapshot is None and n2.log.last_index == 2
    assert rd.messages == (AppendResp(2, 1, 1, index=2),)


def test_restart_keeps_term_vote_and_log_and_relearns_the_commit_index() -> None:
    c = elected()
    c.nodes[1].propose(b"a")
    c.stabilize()
    before = c.nodes[2].log.entries
    c.crash(2)
    c.restart(2)
    n2 = c.nodes[2]
    # term, vote and log are durable; the commit index is volatile (Raft, Figure 2): the
    # node knows what its last hard state said (the vote, at commit 0) ...
    assert (n2.term, n2.vote, n2.log.committed) == (1, 1, 0)
    assert n2.log.entries == before
    assert c.applied[2] == []
    # ... and re-applies the rest as soon as the leader's heartbeat tells it
    c.tick([1], count=c.heartbeat_ticks)
    assert n2.log.committed == 2 and c.applied[2] == [(2, 1, b"a")]


def test_a_commit_index_alone_is_not_written_but_a_vote_is() -> None:
    c = elected()
    written = {i: c.stores[i].hard_state for i in c.ids}
    c.nodes[1].propose(b"a")
    c.stabilize()
    c.tick(count=c.heartbeat_ticks)  # the followers learn the new commit index too
    assert all(c.nodes[i].log.committed == 2 for i in c.ids)
    assert {i: c.stores[i].hard_state for i in c.ids} == written  # no write for a commit
    c.nodes[1].transfer_leadership(2)  # node 2 campaigns at once: a new term and a vote
    c.stabilize()
    hs = c.stores[2].hard_state
    assert (hs.term, hs.vote) == (2, 2) and hs.commit >= 2  # written, with the commit index


# -- leader transfer -----------------------------------------------------------------------
def test_leader_transfer_to_a_lagging_follower() -> None:
    c = elected()
    c.isolate(3)
    c.nodes[1].propose(b"a")
    c.stabilize()
    c.heal()
    c.nodes[1].transfer_leadership(3)
    with pytest.raises(LeaderTransferring):
        c.nodes[1].propose(b"b")
    c.stabilize()  # catch node 3 up, then TimeoutNow
    assert c.leader() == 3 and c.nodes[3].term == 2
    assert c.nodes[3].log.committed == 3


def test_transfer_times_out() -> None:
    c = elected()
    c.crash(3)
    c.nodes[1].transfer_leadership(3)
    c.tick([1, 2], 10)
    assert c.nodes[1].lead_transferee is None
    c.nodes[1].propose(b"ok again")


def test_timeout_now_skips_pre_vote_and_lease() -> None:
    c = elected()
    c.nodes[2].step(TimeoutNow(1, 2, 1))
    c.stabilize()
    assert c.leader() == 2 and c.nodes[2].term == 2


# -- membership --------------------------------------------------------------------------
def test_add_and_remove_voters() -> None:
    c = elected()
    c.add_node(4)
    c.nodes[1].propose_conf_change(ConfOp.ADD, 4)
    assert c.nodes[1].voters == (1, 2, 3, 4)  # in force when appended
    c.stabilize()
    assert c.nodes[4].voters == (1, 2, 3, 4)
    c.nodes[1].propose_conf_change(ConfOp.REMOVE, 2)
    c.stabilize()
    assert all(c.nodes[i].voters == (1, 3, 4) for i in (1, 3, 4))
    c.nodes[1].propose(b"after")
    c.stabilize()
    assert c.applied[4][-1][2] == b"after"


def test_one_membership_change_at_a_time() -> None:
    c = elected()
    c.add_node(4)
    c.nodes[1].propose_conf_change(ConfOp.ADD, 4)
    with pytest.raises(ConfChangeRejected):
        c.nodes[1].propose_conf_change(ConfOp.REMOVE, 2)
    with pytest.raises(NotLeader):
        c.nodes[2].propose_conf_change(ConfOp.REMOVE, 2)


def test_conf_change_waits_for_the_new_leaders_first_commit() -> None:
    n = node(1, state=PersistentState(HardState(1, None, 1), None, (Entry(1, 1),)))
    make_leader(n)
    with pytest.raises(ConfChangeRejected, match="not committed an entry of its term"):
        n.propose_conf_change(ConfOp.REMOVE, 3)


def test_first_leader_writes_the_bootstrap_configuration() -> None:
    c = elected()
    (first,) = c.nodes[3].log.entries
    assert first.kind == EntryKind.CONF
    assert decode_conf_change(first.data) == ConfChange(ConfOp.BOOTSTRAP, 1, (1, 2, 3))
    with pytest.raises(ConfChangeRejected):
        c.nodes[1].propose_conf_change(ConfOp.BOOTSTRAP, 1)


def test_joining_node_learns_the_whole_membership_history() -> None:
    c = elected()
    c.nodes[1].propose(b"a")
    c.stabilize()
    c.compact(1)
    c.add_node(4)
    c.nodes[1].propose_conf_change(ConfOp.ADD, 4)
    c.stabilize()
    n4 = c.nodes[4]
    assert n4.log.snapshot is not None and n4.log.snapshot.voters == (1, 2, 3)
    assert n4.voters == (1, 2, 3, 4)


def test_config_reverts_when_its_entry_is_truncated() -> None:
    cc = ConfChange(ConfOp.ADD, 4, (1, 2, 3, 4))
    log = RaftLog(None, [Entry(1, 1)], 1, (1, 2, 3))
    log.append([Entry(2, 1, EntryKind.CONF, encode_conf_change(cc))])
    assert list(log.voters) == [1, 2, 3, 4]
    log.truncate_from(2)
    assert list(log.voters) == [1, 2, 3]


def test_removed_node_does_not_campaign() -> None:
    c = elected()
    c.nodes[1].propose_conf_change(ConfOp.REMOVE, 3)
    c.stabilize()
    c.isolate(3)
    c.tick([3], 100)
    assert c.nodes[3].role == RaftRole.FOLLOWER and c.nodes[3].term == 1


# -- Ready contract and messages -----------------------------------------------------------
def test_no_input_between_ready_and_advance() -> None:
    n = node()
    n.campaign()
    n.ready()
    with pytest.raises(RuntimeError):
        n.tick()
    n.advance()
    with pytest.raises(RuntimeError):
        n.advance()


def test_ready_hands_out_each_change_once() -> None:
    c = elected()
    n = c.nodes[1]
    assert not n.has_ready()
    n.propose(b"a")
    rd = n.ready()
    n.advance()
    assert [e.data for e in rd.entries] == [b"a"] and rd.hard_state is None
    assert len(rd.messages) == 2 and not n.has_ready()


@pytest.mark.parametrize(
    "msg",
    [
        AppendEntries(
            1, 2, 3, prev_index=4, prev_term=2, entries=(Entry(5, 3, data=b"x"),), commit=4
        ),
        AppendResp(2, 1, 3, index=5, reject=True, hint_index=2, hint_term=1),
        RaftHeartbeat(1, 2, 3, commit=4),
        RaftHeartbeatResp(2, 1, 3),
        RequestVote(1, 2, 3, last_index=4, last_term=2, pre=True),
        VoteResp(2, 1, 3, pre=True, granted=True),
        InstallSnapshot(1, 2, 3, snapshot=Snapshot(9, 2, (1, 2, 3), b"state")),
        TimeoutNow(1, 2, 3),
    ],
)
def test_messages_roundtrip_as_a_tagged_union(msg: object) -> None:
    data = encode_message(msg)  # type: ignore[arg-type]
    assert decode_message(data) == msg
    with pytest.raises(msgspec.DecodeError):
        decode_message(data[:-1])


def test_invalid_timer_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RaftNode(1, (1,), PersistentState(), random.Random(0), 2, 2)


def test_single_node_cluster_commits_alone() -> None:
    c = Cluster((1,))
    c.nodes[1].campaign()
    c.stabilize()
    c.nodes[1].propose(b"solo")
    c.stabilize()
    assert c.applied[1] == [(2, 1, b"solo")]
