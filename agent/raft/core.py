"""The Raft algorithm as a synchronous state machine (after etcd-io/raft).

No clocks, sockets, files, threads or global randomness: time is ``tick()``, the network is
``step()`` in and ``Ready.messages`` out, the disk is ``Ready`` out, and the randomised
election timeout comes from the injected ``random.Random``. That makes every run
reproducible, which is what lets :mod:`agent.raft.sim` replay any failure from its seed.

Each role installs its own ``_step_role`` / ``_tick_role`` handlers when it is entered,
so the handlers never ask which role they are in.

Membership changes are single-server (Raft thesis, section 4.1): a configuration takes
effect as soon as its entry is appended to a node's log, committed or not, and reverts if
that entry is truncated. A leader proposes the next change only after the previous one is
committed and after it has committed an entry of its own term. The first leader of a new
cluster writes the initial voter set as entry 1, so the configuration history always
lives in the log or a snapshot; ``peers`` only seeds a brand-new node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from agent.core.quorum import is_majority, majority
from agent.raft.errors import (
    ConfChangeRejected,
    LeaderTransferring,
    NotLeader,
    QuorumLost,
    TransferRejected,
)
from agent.raft.log import LogInvariantError, RaftLog
from agent.raft.messages import (
    AnyRaftMessage,
    AppendEntries,
    AppendResp,
    ConfChange,
    ConfOp,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    PersistentState,
    RaftHeartbeat,
    RaftHeartbeatResp,
    RequestVote,
    Snapshot,
    TimeoutNow,
    VoteResp,
    encode_conf_change,
)
from agent.raft.progress import Progress, ProgressState
from agent.raft.ready import RaftRole, Ready, SoftState

if TYPE_CHECKING:
    import random

__all__ = ["RaftNode"]

MAX_BATCH = 64


class RaftNode:
    """One Raft peer.

    ``peers`` is the initial voter set (including ``id``) and only matters until the log
    or a snapshot says otherwise; pass the same tuple on every start, or ``()`` for a node
    that will be added to an existing cluster. ``storage_state`` is exactly what the shell
    persisted (``PersistentState()`` for a brand-new node).
    """

    def __init__(  # noqa: PLR0917 - the shell's documented positional signature
        self,
        id: int,
        peers: Iterable[int],
        storage_state: PersistentState,
        rng: random.Random,
        election_ticks: int = 10,
        heartbeat_ticks: int = 1,
        *,
        pre_vote: bool = True,
        check_quorum: bool = True,
    ) -> None:
        if heartbeat_ticks < 1 or election_ticks <= heartbeat_ticks:
            raise ValueError("election_ticks must exceed heartbeat_ticks >= 1")
        self.id = id
        self.election_ticks = election_ticks
        self.heartbeat_ticks = heartbeat_ticks
        self.pre_vote = pre_vote
        self.check_quorum = check_quorum
        self._rng = rng
        hs = storage_state.hard_state
        self.term = hs.term
        self.vote = hs.vote
        self.log = RaftLog(storage_state.snapshot, storage_state.entries, hs.commit, tuple(peers))
        self.lead: int | None = None
        self.role = RaftRole.FOLLOWER
        self.progress: dict[int, Progress] = {}
        self.lead_transferee: int | None = None
        self._votes: dict[int, bool] = {}
        self._now = 0
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = election_ticks
        self._term_start = 0
        self._msgs: list[AnyRaftMessage] = []
        self._snapshot_out: Snapshot | None = None
        self._restore_out = False
        self._prev_hs = hs
        self._prev_soft = SoftState(None, RaftRole.FOLLOWER)
        self._outstanding = False
        self._step_role: Callable[[AnyRaftMessage], None] = self._step_follower
        self._tick_role: Callable[[], None] = self._tick_follower
        self._become_follower(self.term, None)

    # ---------------------------------------------------------------- public inputs
    @property
    def voters(self) -> tuple[int, ...]:
        return self.log.voters

    @property
    def promotable(self) -> bool:
        """Only a member of its own configuration may campaign."""
        return self.id in self.log.voters

    def tick(self) -> None:
        """Advance logical time by one tick (elections, heartbeats, check-quorum)."""
        self._guard()
        self._now += 1
        self._tick_role()

    def step(self, msg: AnyRaftMessage) -> None:
        """Feed one message from a peer."""
        self._guard()
        if msg.dst != self.id:
            return
        if msg.term > self.term:
            if isinstance(msg, RequestVote):
                if not msg.transfer and self._in_lease():
                    # We hear from a live leader: a disrupting (pre-)candidate is ignored.
                    return
                if not msg.pre:
                    self._become_follower(msg.term, None)
            elif isinstance(msg, VoteResp) and msg.pre and msg.granted:
                pass  # a granted pre-vote carries our future term, not a newer one
            elif isinstance(msg, AppendEntries | RaftHeartbeat | InstallSnapshot):
                self._become_follower(msg.term, msg.src)
            else:
                self._become_follower(msg.term, None)
        elif msg.term < self.term:
            if isinstance(msg, AppendEntries | RaftHeartbeat):
                # A stale leader (or a node whose term ran ahead while partitioned, which
                # pre-vote and leases could otherwise leave stuck): tell it our term.
                self._send(AppendResp(self.id, msg.src, self.term, index=0))
            elif isinstance(msg, RequestVote) and msg.pre:
                self._send(VoteResp(self.id, msg.src, self.term, pre=True, granted=False))
            return
        if isinstance(msg, RequestVote):
            self._handle_vote_request(msg)
            return
        self._step_role(msg)

    def campaign(self) -> None:
        """Start an election now, as if the election timeout had fired."""
        self._guard()
        self._campaign(transfer=False)

    def propose(self, data: bytes) -> int:
        """Append a command; returns its log index. It is durable once committed, i.e. once
        it comes back in ``committed_entries`` with the same index and this term."""
        self._guard()
        self._require_writable()
        return self._append_local(EntryKind.NORMAL, data)

    def propose_conf_change(self, op: ConfOp, node: int) -> int:
        """Add or remove one voter; returns the index of the configuration entry."""
        self._guard()
        if op == ConfOp.BOOTSTRAP:
            raise ConfChangeRejected("a running cluster cannot be bootstrapped again")
        self._require_writable()
        voters = set(self.log.voters)
        if self.log.conf_index > self.log.committed:
            raise ConfChangeRejected(
                "a membership change is still being committed; propose the next one after it"
            )
        if self.log.committed < self._term_start:
            raise ConfChangeRejected(
                "the new leader has not committed an entry of its term yet; try again shortly"
            )
        if op == ConfOp.ADD:
            if node in voters:
                raise ConfChangeRejected(f"node {node} is already a voter")
            voters.add(node)
        else:
            if node not in voters:
                raise ConfChangeRejected(f"node {node} is not a voter")
            if len(voters) == 1:
                raise ConfChangeRejected("the last voter of a cluster cannot be removed")
            voters.discard(node)
        cc = ConfChange(op=op, node=node, voters=tuple(sorted(voters)))
        return self._append_local(EntryKind.CONF, encode_conf_change(cc))

    def transfer_leadership(self, to: int) -> None:
        """Hand leadership to voter ``to`` (TimeoutNow once it has caught up)."""
        self._guard()
        if self.role != RaftRole.LEADER:
            raise NotLeader(self.lead)
        if to == self.id:
            return
        if to not in self.progress or to not in self.log.voters:
            raise TransferRejected(f"node {to} is not a voter, so it cannot become the leader")
        if self.lead_transferee == to:
            return
        self.lead_transferee = to
        self._election_elapsed = 0  # the transfer must finish within an election timeout
        if self.progress[to].match == self.log.last_index:
            self._send(TimeoutNow(self.id, to, self.term))
        else:
            self._send_append(to)

    def compact(self, index: int, snapshot_data: bytes) -> Snapshot | None:
        """The application's state up to ``index`` (which it has applied) is
        ``snapshot_data``: drop the log prefix. The snapshot goes into the next Ready."""
        self._guard()
        if index <= self.log.snap_index:
            return None
        if index > self.log.applied:
            raise ValueError(f"cannot compact to {index}: only {self.log.applied} is applied")
        term = self.log.term(index)
        assert term is not None
        snap = Snapshot(index, term, self.log.voters_at(index), snapshot_data)
        self.log.compact(snap)
        if self._snapshot_out is None or not self._restore_out:
            self._snapshot_out = snap
        return snap

    # ---------------------------------------------------------------- Ready
    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._snapshot_out is not None
            or self.log.stable < self.log.last_index
            or self.log.pending_truncate is not None
            or self.log.applied < self.log.committed
            or self._durable_changed(self._hard_state())
            or self._soft_state() != self._prev_soft
        )

    def _durable_changed(self, hs: HardState) -> bool:
        """Term and vote must reach the disk before we say a word; the commit index is
        volatile (Raft, Figure 2) and travels only with them."""
        return (hs.term, hs.vote) != (self._prev_hs.term, self._prev_hs.vote)

    def ready(self) -> Ready:
        """Take the pending output; handle it (see :mod:`agent.raft.ready`), then
        ``advance()``. Nothing may be fed to the node in between."""
        self._guard()
        hs = self._hard_state()
        soft = self._soft_state()
        durable = self._durable_changed(hs)
        rd = Ready(
            hard_state=hs if durable else None,
            truncate_from=self.log.pending_truncate,
            entries=tuple(self.log.unstable_entries()),
            snapshot=self._snapshot_out,
            restore_snapshot=self._restore_out,
            messages=tuple(self._msgs),
            committed_entries=tuple(self.log.next_committed()),
            soft_state=soft if soft != self._prev_soft else None,
        )
        if durable:
            self._prev_hs = hs
        self._prev_soft = soft
        self._msgs = []
        self._snapshot_out = None
        self._restore_out = False
        self.log.stable = self.log.last_index
        self.log.pending_truncate = None
        self.log.applied = self.log.committed
        self._outstanding = True
        return rd

    def advance(self) -> None:
        """The last Ready was persisted, sent and applied."""
        if not self._outstanding:
            raise RuntimeError("advance() without an outstanding ready()")
        self._outstanding = False

    def status(self) -> str:
        """One line for tests and debugging."""
        lead = "-" if self.lead is None else str(self.lead)
        return (
            f"{self.id} {self.role.value} term={self.term} lead={lead} "
            f"commit={self.log.committed} applied={self.log.applied} last={self.log.last_index}"
        )

    # ---------------------------------------------------------------- role changes
    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.lead = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = self.election_ticks + self._rng.randrange(self.election_ticks)
        self.lead_transferee = None
        self._votes = {}
        self.progress = {}

    def _become_follower(self, term: int, lead: int | None) -> None:
        self._reset(term)
        self.lead = lead
        self.role = RaftRole.FOLLOWER
        self._step_role = self._step_follower
        self._tick_role = self._tick_follower

    def _become_pre_candidate(self) -> None:
        # Term and vote stay as they are: a pre-vote changes nobody's durable state.
        self._reset(self.term)
        self.role = RaftRole.PRE_CANDIDATE
        self._step_role = self._step_candidate
        self._tick_role = self._tick_follower

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = RaftRole.CANDIDATE
        self._step_role = self._step_candidate
        self._tick_role = self._tick_follower

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.lead = self.id
        self.role = RaftRole.LEADER
        self._step_role = self._step_leader
        self._tick_role = self._tick_leader
        nxt = self.log.last_index + 1
        self.progress = {v: Progress(nxt, self._now) for v in self.log.voters if v != self.id}
        # An empty entry of our term lets us commit (and learn the commit of) older terms.
        # In a brand-new cluster it records the bootstrap configuration instead, so that
        # nodes added later learn the whole membership history from the log.
        self._term_start = nxt
        if nxt == 1:
            cc = ConfChange(op=ConfOp.BOOTSTRAP, node=self.id, voters=self.log.voters)
            self.log.append([Entry(1, self.term, EntryKind.CONF, encode_conf_change(cc))])
        else:
            self.log.append([Entry(nxt, self.term)])
        self._broadcast_append()
        self._maybe_commit()

    def _campaign(self, transfer: bool) -> None:
        """Start an election: a pre-vote round first, unless disabled or a transfer."""
        if not self.promotable:
            return
        if self.pre_vote and not transfer:
            self._become_pre_candidate()
            self._request_votes(self.term + 1, pre=True, transfer=False)
        else:
            self._run_election(transfer)

    def _run_election(self, transfer: bool) -> None:
        self._become_candidate()
        self._request_votes(self.term, pre=False, transfer=transfer)

    def _request_votes(self, term: int, pre: bool, transfer: bool) -> None:
        self._votes[self.id] = True
        if self._tally_won():  # a single-voter cluster
            self._won_vote(pre)
            return
        for v in self.log.voters:
            if v != self.id:
                self._send(
                    RequestVote(
                        self.id,
                        v,
                        term,
                        last_index=self.log.last_index,
                        last_term=self.log.last_term,
                        pre=pre,
                        transfer=transfer,
                    )
                )

    def _won_vote(self, pre: bool) -> None:
        if pre:
            self._run_election(transfer=False)
        else:
            self._become_leader()

    # ---------------------------------------------------------------- ticks
    def _tick_follower(self) -> None:
        self._election_elapsed += 1
        if self._election_elapsed >= self._timeout and self.promotable:
            self._campaign(transfer=False)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.election_ticks:
            self._election_elapsed = 0
            self.lead_transferee = None  # a transfer that took this long has failed
        if self.check_quorum and self._reachable(self.election_ticks) < self._quorum():
            self._become_follower(self.term, None)
            return
        if self._heartbeat_elapsed >= self.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            for to, pr in self.progress.items():
                commit = min(pr.match, self.log.committed)
                self._send(RaftHeartbeat(self.id, to, self.term, commit=commit))

    # ---------------------------------------------------------------- steps
    def _handle_vote_request(self, m: RequestVote) -> None:
        can_vote = (
            self.vote == m.src
            or (self.vote is None and self.lead is None)
            or (m.pre and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.last_index, m.last_term):
            self._send(VoteResp(self.id, m.src, m.term, pre=m.pre, granted=True))
            if not m.pre:
                self._election_elapsed = 0
                self.vote = m.src
        else:
            self._send(VoteResp(self.id, m.src, self.term, pre=m.pre, granted=False))

    def _step_follower(self, m: AnyRaftMessage) -> None:
        if isinstance(m, AppendEntries):
            self._election_elapsed = 0
            self.lead = m.src
            self._handle_append(m)
        elif isinstance(m, RaftHeartbeat):
            self._election_elapsed = 0
            self.lead = m.src
            self.log.commit_to(min(m.commit, self.log.last_index))
            self._send(RaftHeartbeatResp(self.id, m.src, self.term))
        elif isinstance(m, InstallSnapshot):
            self._election_elapsed = 0
            self.lead = m.src
            self._handle_snapshot(m)
        elif isinstance(m, TimeoutNow):
            self._campaign(transfer=True)

    def _step_candidate(self, m: AnyRaftMessage) -> None:
        if isinstance(m, AppendEntries | RaftHeartbeat | InstallSnapshot):
            # Someone won this term (for a pre-candidate: the current term).
            self._become_follower(m.term, m.src)
            self._step_follower(m)
        elif isinstance(m, VoteResp):
            if m.pre != (self.role == RaftRole.PRE_CANDIDATE):
                return
            self._votes.setdefault(m.src, m.granted)
            if self._tally_won():
                self._won_vote(m.pre)
            elif self._tally_lost():
                self._become_follower(self.term, None)

    def _step_leader(self, m: AnyRaftMessage) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        if isinstance(m, AppendResp):
            pr.last_heard = self._now
            self._handle_append_resp(m, pr)
        elif isinstance(m, RaftHeartbeatResp):
            pr.last_heard = self._now
            if pr.state == ProgressState.SNAPSHOT:
                if self._now - pr.sent_at < self.election_ticks:
                    return
                pr.become_probe()  # the snapshot was probably lost: start over
            pr.paused = False
            if pr.match < self.log.last_index:
                self._send_append(m.src)

    def _handle_append(self, m: AppendEntries) -> None:
        if m.prev_index < self.log.committed:
            self._send(AppendResp(self.id, m.src, self.term, index=self.log.committed))
            return
        last_new = self.log.maybe_append(m.prev_index, m.prev_term, m.commit, m.entries)
        if last_new is not None:
            self._send(AppendResp(self.id, m.src, self.term, index=last_new))
            return
        hint_index, hint_term = self.log.find_conflict_by_term(
            min(m.prev_index, self.log.last_index), m.prev_term
        )
        self._send(
            AppendResp(
                self.id,
                m.src,
                self.term,
                index=m.prev_index,
                reject=True,
                hint_index=hint_index,
                hint_term=hint_term,
            )
        )

    def _handle_snapshot(self, m: InstallSnapshot) -> None:
        s = m.snapshot
        if s.index <= self.log.committed:
            self._send(AppendResp(self.id, m.src, self.term, index=self.log.committed))
            return
        if self.log.match_term(s.index, s.term):
            # We already hold that history; just learn that it is committed.
            self.log.commit_to(s.index)
            self._send(AppendResp(self.id, m.src, self.term, index=self.log.committed))
            return
        self.log.restore(s)
        self._snapshot_out = s
        self._restore_out = True
        self._send(AppendResp(self.id, m.src, self.term, index=self.log.last_index))

    def _handle_append_resp(self, m: AppendResp, pr: Progress) -> None:
        if m.reject:
            hint = m.hint_index
            if m.hint_term > 0:
                hint, _ = self.log.find_conflict_by_term(m.hint_index, m.hint_term)
            if pr.maybe_decrease(m.index, hint):
                if pr.state == ProgressState.REPLICATE:
                    pr.state = ProgressState.PROBE
                self._send_append(m.src)
            return
        was_paused = pr.paused
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= self.log.first_index:
            pr.become_probe()
            pr.become_replicate()
        if self._maybe_commit():
            if self.role != RaftRole.LEADER:
                return  # we committed our own removal and stepped down
            self._broadcast_append()
        elif was_paused:
            self._send_append(m.src)
        while self._send_append(m.src, send_if_empty=False):
            pass
        if m.src == self.lead_transferee and pr.match == self.log.last_index:
            self._send(TimeoutNow(self.id, m.src, self.term))

    # ---------------------------------------------------------------- leader helpers
    def _append_local(self, kind: EntryKind, data: bytes) -> int:
        index = self.log.last_index + 1
        self.log.append([Entry(index, self.term, kind, data)])
        if kind == EntryKind.CONF:
            self._sync_progress()
        self._broadcast_append()
        self._maybe_commit()
        return index

    def _sync_progress(self) -> None:
        """Track the voters now in force, and keep replicating to a removed node until its
        removal commits, so that it learns it is out and stops campaigning."""
        voters = self.log.voters
        for v in voters:
            if v != self.id and v not in self.progress:
                self.progress[v] = Progress(self.log.last_index + 1, self._now)
        if len(self.progress) == len(voters) - (self.id in voters):
            return
        removal_committed = self.log.committed >= self.log.conf_index
        for v in list(self.progress):
            if v not in voters:
                if self.lead_transferee == v:
                    self.lead_transferee = None
                if removal_committed:
                    del self.progress[v]

    def _broadcast_append(self) -> None:
        for to in self.progress:
            self._send_append(to)

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.progress[to]
        if pr.state == ProgressState.SNAPSHOT or (pr.state == ProgressState.PROBE and pr.paused):
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        if prev_term is None:
            snap = self.log.snapshot
            if snap is None:
                raise LogInvariantError(f"no term for {prev_index} and no snapshot")
            self._send(InstallSnapshot(self.id, to, self.term, snapshot=snap))
            pr.become_snapshot(snap.index, self._now)
            return True
        entries = self.log.slice(pr.next, pr.next + MAX_BATCH)
        if not entries and not send_if_empty:
            return False
        self._send(
            AppendEntries(
                self.id,
                to,
                self.term,
                prev_index=prev_index,
                prev_term=prev_term,
                entries=tuple(entries),
                commit=self.log.committed,
            )
        )
        if pr.state == ProgressState.REPLICATE:
            if entries:
                pr.next = entries[-1].index + 1
        else:
            pr.paused = True
        return True

    def _maybe_commit(self) -> bool:
        """Commit the highest index a majority holds, if it is of our term (Raft 5.4.2)."""
        voters = self.log.voters
        matches = sorted(
            (self.log.last_index if v == self.id else self.progress[v].match for v in voters),
            reverse=True,
        )
        n = matches[majority(len(voters)) - 1]  # the highest index a majority holds
        if n <= self.log.committed or self.log.term(n) != self.term:
            return False
        self.log.commit_to(n)
        self._sync_progress()
        if self.id not in voters and self.log.committed >= self.log.conf_index:
            # Our own removal is committed: stop leading, after telling followers.
            self._broadcast_append()
            self._become_follower(self.term, None)
        return True

    def _reachable(self, window: int) -> int:
        """Voters heard from within ``window`` ticks (counting ourselves if a voter)."""
        now = self._now
        count = 0
        for v in self.log.voters:
            if v == self.id:
                count += 1
                continue
            pr = self.progress.get(v)
            if pr is not None and now - pr.last_heard < window:
                count += 1
        return count

    def _quorum(self) -> int:
        return majority(len(self.log.voters))

    def _require_writable(self) -> None:
        if self.role != RaftRole.LEADER:
            raise NotLeader(self.lead)
        if self.lead_transferee is not None:
            raise LeaderTransferring(self.lead_transferee)
        if self.check_quorum:
            window = max(self.heartbeat_ticks + 1, self.election_ticks // 2)
            reachable = self._reachable(window)
            if reachable < self._quorum():
                raise QuorumLost(reachable, len(self.log.voters))

    # ---------------------------------------------------------------- small helpers
    def _in_lease(self) -> bool:
        """Heard from a leader within the minimum election timeout (thesis 4.2.3)."""
        return (
            self.check_quorum
            and self.lead is not None
            and self._election_elapsed < self.election_ticks
        )

    def _tally_won(self) -> bool:
        granted = sum(1 for v in self.log.voters if self._votes.get(v) is True)
        return is_majority(granted, len(self.log.voters))

    def _tally_lost(self) -> bool:
        rejected = sum(1 for v in self.log.voters if self._votes.get(v) is False)
        return is_majority(rejected, len(self.log.voters))

    def _send(self, msg: AnyRaftMessage) -> None:
        self._msgs.append(msg)

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def _guard(self) -> None:
        if self._outstanding:
            raise RuntimeError("call advance() for the last Ready before feeding the node")
