//! Checks every field of a message that arrives on the peer listener before openraft (or the
//! leader's request path) sees it.
//!
//! The peer listener admits anyone who knows the cluster name, and openraft trusts what it is
//! given: one AppendEntries whose vote has term `u64::MAX` makes a node persist that vote and
//! panic at every later election (the term overflows when openraft adds 1). So each rule here
//! is a pure function of the message and the node's own view of the cluster ([`PeerView`]);
//! a refused message is answered with the field it got wrong and never reaches openraft.
//!
//! What the rules can and can't do without authentication: anyone may still claim to be a
//! member. The rules make a forged message harmless to the node's future (no term near
//! overflow, no vote for a node that does not exist, no snapshot offset that allocates
//! gigabytes) and refuse the claims that contradict what this node knows (another leader while
//! this node leads with a live quorum). mTLS on the peer listener is what will stop a peer
//! from speaking for another.

use openraft::{
    raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest},
    EntryPayload, LogId, Membership, Vote,
};
use trunkline_store::{Node, NodeId, TypeConfig};

use crate::{cluster::LeaderRequest, limits};

/// What this node knows when a peer message arrives; copied out of the Raft metrics.
#[derive(Clone, Debug)]
pub struct PeerView {
    pub node_id: NodeId,
    /// This node's current vote: its term and whom it follows (or itself when it leads).
    pub vote: Vote<NodeId>,
    /// The effective membership (the latest in this node's log, committed or not).
    pub membership: Membership<NodeId, Node>,
    /// This node leads and a quorum acknowledged it within the leader lease. Followers refuse
    /// to vote while their lease on this leader runs (openraft renews it at every heartbeat),
    /// so no other leader can have been elected since: a message claiming one is forged.
    pub leading_with_live_quorum: bool,
    /// This node leads with a live quorum, or an AppendEntries from a leader succeeded here
    /// within the leader lease.
    pub has_live_leader: bool,
}

/// A snapshot being received: which one, and how many bytes of it arrived so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotProgress {
    pub snapshot_id: String,
    pub received_bytes: u64,
}

/// Why a peer message was refused: the gRPC code, the field as the message names it, and
/// what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: tonic::Code,
    pub field: &'static str,
    pub reason: String,
}

impl Refusal {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Refusal {
        Refusal {
            code: tonic::Code::InvalidArgument,
            field,
            reason: reason.into(),
        }
    }

    fn precondition(field: &'static str, reason: impl Into<String>) -> Refusal {
        Refusal {
            code: tonic::Code::FailedPrecondition,
            field,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl From<Refusal> for tonic::Status {
    fn from(refusal: Refusal) -> tonic::Status {
        tonic::Status::new(refusal.code, format!("peer message refused: {refusal}"))
    }
}

type Checked = Result<(), Refusal>;

/// AppendEntries: the leader's vote, the log position it appends after, the entries and the
/// leader's commit index.
pub fn append_entries(request: &AppendEntriesRequest<TypeConfig>, view: &PeerView) -> Checked {
    leader_vote(&request.vote, view)?;
    let term = request.vote.leader_id.term;
    if let Some(prev) = &request.prev_log_id {
        log_id("prev_log_id", prev, term)?;
    }
    if let Some(committed) = &request.leader_commit {
        // Not bounded by the last index sent: a leader catching a follower up sends its own
        // commit index with every batch, and the follower commits no further than it holds.
        log_id("leader_commit", committed, term)?;
    }
    let count = u64::try_from(request.entries.len()).unwrap_or(u64::MAX);
    if count > limits::RAFT_MAX_PAYLOAD_ENTRIES {
        return Err(Refusal::invalid(
            "entries",
            format!(
                "{count} entries; a batch holds at most {}",
                limits::RAFT_MAX_PAYLOAD_ENTRIES
            ),
        ));
    }
    // The first entry follows prev_log_id (index 0 when the leader sends from the start).
    // prev_log_id's index was checked far from overflow above.
    let first_index = request
        .prev_log_id
        .map_or(0, |prev| prev.index.saturating_add(1));
    let mut previous_term = request.prev_log_id.map_or(0, |prev| prev.leader_id.term);
    for (expected_index, entry) in (first_index..).zip(&request.entries) {
        log_id("entries.log_id", &entry.log_id, term)?;
        if entry.log_id.index != expected_index {
            return Err(Refusal::invalid(
                "entries.log_id.index",
                format!(
                    "{} where {expected_index} was expected: entries must follow prev_log_id \
                     without gaps",
                    entry.log_id.index
                ),
            ));
        }
        if entry.log_id.leader_id.term < previous_term {
            return Err(Refusal::invalid(
                "entries.log_id.leader_id.term",
                format!(
                    "{} at index {} after term {previous_term}: terms never decrease along a log",
                    entry.log_id.leader_id.term, entry.log_id.index
                ),
            ));
        }
        if let EntryPayload::Membership(membership) = &entry.payload {
            carried_membership("entries.payload.membership", membership)?;
        }
        previous_term = entry.log_id.leader_id.term;
    }
    let carried = request
        .entries
        .iter()
        .filter_map(|entry| match &entry.payload {
            EntryPayload::Membership(membership) => Some(membership),
            _ => None,
        });
    known_leader(&request.vote, view, carried)
}

/// RequestVote: a candidate's vote and the last log id it holds.
pub fn vote(request: &VoteRequest<NodeId>, view: &PeerView) -> Checked {
    let candidate = request.vote.leader_id.node_id;
    if request.vote.is_committed() {
        return Err(Refusal::invalid(
            "vote.committed",
            "a candidate's vote is never committed",
        ));
    }
    not_self(candidate, view)?;
    term("vote.leader_id.term", request.vote.leader_id.term, view)?;
    if request.vote.leader_id.term == 0 {
        return Err(Refusal::invalid(
            "vote.leader_id.term",
            "0: a candidate campaigns at term 1 or later",
        ));
    }
    if let Some(last) = &request.last_log_id {
        log_id("last_log_id", last, request.vote.leader_id.term)?;
    }
    not_while_leading(&request.vote, view)?;
    // A learner is accepted too: a member that has not yet applied the entry promoting the
    // candidate still knows it as a learner. Refusing a vote is always safe for Raft; the
    // point is that a node that is no member at all can't move this node's term.
    if !is_member(&view.membership, candidate) {
        return Err(Refusal::precondition(
            "vote.leader_id.node_id",
            format!(
                "node {candidate} is not a member of this node's membership ({})",
                describe_members(&view.membership)
            ),
        ));
    }
    Ok(())
}

/// InstallSnapshot: the leader's vote, the snapshot's metadata and one chunk of its bytes.
/// `progress` is the snapshot being received, if any.
pub fn install_snapshot(
    request: &InstallSnapshotRequest<TypeConfig>,
    view: &PeerView,
    progress: Option<&SnapshotProgress>,
) -> Checked {
    leader_vote(&request.vote, view)?;
    let term = request.vote.leader_id.term;
    let meta = &request.meta;
    if meta.snapshot_id.is_empty() || meta.snapshot_id.len() > limits::PEER_MAX_SNAPSHOT_ID_BYTES {
        return Err(Refusal::invalid(
            "meta.snapshot_id",
            format!(
                "{} bytes; an id has 1 to {} bytes",
                meta.snapshot_id.len(),
                limits::PEER_MAX_SNAPSHOT_ID_BYTES
            ),
        ));
    }
    let Some(last) = &meta.last_log_id else {
        return Err(Refusal::invalid(
            "meta.last_log_id",
            "missing: a snapshot covers at least one entry",
        ));
    };
    log_id("meta.last_log_id", last, term)?;
    if let Some(membership_log_id) = meta.last_membership.log_id() {
        log_id("meta.last_membership.log_id", membership_log_id, term)?;
        if membership_log_id > last {
            return Err(Refusal::invalid(
                "meta.last_membership.log_id",
                format!("{membership_log_id} is after the snapshot's last log id {last}"),
            ));
        }
    }
    let membership = meta.last_membership.membership();
    carried_membership("meta.last_membership", membership)?;
    let chunk_bytes = u64::try_from(request.data.len()).unwrap_or(u64::MAX);
    if chunk_bytes > limits::RAFT_SNAPSHOT_CHUNK_BYTES {
        return Err(Refusal::invalid(
            "data",
            format!(
                "{chunk_bytes} bytes; a chunk has at most {}",
                limits::RAFT_SNAPSHOT_CHUNK_BYTES
            ),
        ));
    }
    // The receiving side keeps the snapshot in memory and a write at an offset fills the gap
    // with zeroes: an offset past what arrived would allocate memory nobody sent.
    let received = match progress {
        Some(progress) if progress.snapshot_id == meta.snapshot_id => progress.received_bytes,
        _ => 0,
    };
    if request.offset > received {
        return Err(Refusal::invalid(
            "offset",
            format!(
                "{} but only {received} bytes of snapshot {:?} arrived; chunks come in order",
                request.offset, meta.snapshot_id
            ),
        ));
    }
    if request.offset.saturating_add(chunk_bytes) > limits::PEER_MAX_SNAPSHOT_BYTES {
        return Err(Refusal::invalid(
            "offset",
            format!(
                "{} + {chunk_bytes} bytes is past the largest snapshot a node takes ({} bytes)",
                request.offset,
                limits::PEER_MAX_SNAPSHOT_BYTES
            ),
        ));
    }
    known_leader(&request.vote, view, std::iter::once(membership))
}

/// A request forwarded to this node as the leader. Writes are validated by the command's own
/// rules on the request path; here, the ids and addresses of membership changes.
pub fn forward(request: &LeaderRequest) -> Checked {
    match request {
        LeaderRequest::Write(..) | LeaderRequest::ReadIndex => Ok(()),
        LeaderRequest::AddLearner { node_id, node } => {
            node_id_field("node_id", *node_id)?;
            address("node.peer_addr", &node.peer_addr)?;
            address("node.api_addr", &node.api_addr)
        }
        LeaderRequest::Promote { node_id } | LeaderRequest::Remove { node_id } => {
            node_id_field("node_id", *node_id)
        }
    }
}

/// A ping names the node that sends it: a real node id, not this node's own.
pub fn ping(sender: NodeId, own_id: NodeId) -> Checked {
    node_id_field("sender", sender)?;
    if sender == own_id {
        return Err(Refusal::invalid(
            "sender",
            format!("{sender} is this node's own id"),
        ));
    }
    Ok(())
}

/// Hello and ProbeStatus carry nothing: the payload must be empty (what `()` encodes to).
pub fn empty_payload(payload: &[u8]) -> Checked {
    if payload.is_empty() {
        Ok(())
    } else {
        Err(Refusal::invalid(
            "payload",
            format!("{} bytes where none are expected", payload.len()),
        ))
    }
}

/// FetchRecords: a range of log time that is not reversed, and a key to resume after within
/// it.
pub fn fetch_records(request: &crate::backfill::FetchRecordsRequest) -> Checked {
    if request.since_ms > request.until_ms {
        return Err(Refusal::invalid(
            "since_ms",
            format!(
                "{} is after until_ms ({})",
                request.since_ms, request.until_ms
            ),
        ));
    }
    if let Some((recorded_ms, _, _)) = request.after {
        if !(request.since_ms..request.until_ms).contains(&recorded_ms) {
            return Err(Refusal::invalid(
                "after",
                format!(
                    "a key at log time {recorded_ms} ms, outside the range asked for ({} to {} ms)",
                    request.since_ms, request.until_ms
                ),
            ));
        }
    }
    Ok(())
}

/// The vote a leader sends with AppendEntries and InstallSnapshot.
fn leader_vote(vote: &Vote<NodeId>, view: &PeerView) -> Checked {
    if !vote.is_committed() {
        return Err(Refusal::invalid(
            "vote.committed",
            "false: a leader's vote is committed (granted by a quorum)",
        ));
    }
    not_self(vote.leader_id.node_id, view)?;
    term("vote.leader_id.term", vote.leader_id.term, view)?;
    not_while_leading(vote, view)
}

/// A term openraft can take: it adds 1 to the term when it campaigns, so a term near
/// `u64::MAX` would overflow; and a jump far beyond this node's term is no election history.
fn term(field: &'static str, term: u64, view: &PeerView) -> Checked {
    if term > limits::PEER_MAX_TERM {
        return Err(Refusal::invalid(
            field,
            format!(
                "{term} is above the largest term a node takes ({})",
                limits::PEER_MAX_TERM
            ),
        ));
    }
    let current = view.vote.leader_id.term;
    let ceiling = current.saturating_add(limits::PEER_MAX_TERM_JUMP);
    if term > ceiling {
        return Err(Refusal::invalid(
            field,
            format!(
                "{term} is more than {} beyond this node's term {current}",
                limits::PEER_MAX_TERM_JUMP
            ),
        ));
    }
    Ok(())
}

/// A log id in a message: its index far from overflow, its term no later than the sender's.
fn log_id(field: &'static str, log_id: &LogId<NodeId>, sender_term: u64) -> Checked {
    if log_id.index > limits::PEER_MAX_LOG_INDEX {
        return Err(Refusal::invalid(
            field,
            format!(
                "index {} is above the largest log index a node takes ({})",
                log_id.index,
                limits::PEER_MAX_LOG_INDEX
            ),
        ));
    }
    if log_id.leader_id.term > sender_term {
        return Err(Refusal::invalid(
            field,
            format!(
                "term {} is after the sender's term {sender_term}",
                log_id.leader_id.term
            ),
        ));
    }
    Ok(())
}

/// A node never sends Raft messages to itself.
fn not_self(sender: NodeId, view: &PeerView) -> Checked {
    if sender == view.node_id {
        return Err(Refusal::invalid(
            "vote.leader_id.node_id",
            format!("{sender} is this node's own id"),
        ));
    }
    Ok(())
}

/// While this node leads with a live quorum no other vote can have won (see
/// [`PeerView::leading_with_live_quorum`]); a message claiming one would make it step down.
fn not_while_leading(vote: &Vote<NodeId>, view: &PeerView) -> Checked {
    if view.leading_with_live_quorum && vote.leader_id.term >= view.vote.leader_id.term {
        return Err(Refusal::precondition(
            "vote",
            format!(
                "term {} for node {}, but this node leads term {} with a live quorum",
                vote.leader_id.term, vote.leader_id.node_id, view.vote.leader_id.term
            ),
        ));
    }
    Ok(())
}

/// The leader of an AppendEntries or InstallSnapshot is a member this node knows, or one the
/// message's own memberships name, or the leader this node already follows (its own vote is
/// that leader's committed vote). A node with no live leader accepts an unknown one (its term
/// still bounded): a brand-new node being joined knows no membership until the leader's first
/// entries arrive, and a member that was down while the leader was added learns of it from
/// the entries this leader sends.
///
/// The leader it follows matters for a node being joined: the leader's first messages probe
/// for where the logs meet and carry no entries, so the node follows that leader while it
/// still knows no membership. Refusing the leader's next messages as a stranger's (as this
/// rule once did) held the node to one accepted message per lease, and a node promoted in that
/// state could block a membership change for minutes.
fn known_leader<'a>(
    vote: &Vote<NodeId>,
    view: &PeerView,
    mut carried: impl Iterator<Item = &'a Membership<NodeId, Node>>,
) -> Checked {
    let leader = vote.leader_id.node_id;
    // The same node again at a later term (re-elected) is still the leader it follows.
    let followed = view.vote.is_committed()
        && view.vote.leader_id.node_id == leader
        && vote.leader_id.term >= view.vote.leader_id.term;
    if followed
        || is_member(&view.membership, leader)
        || carried.any(|membership| is_member(membership, leader))
        || !view.has_live_leader
    {
        return Ok(());
    }
    Err(Refusal::precondition(
        "vote.leader_id.node_id",
        format!(
            "node {leader} is not a member ({}) and this node follows a live leader",
            describe_members(&view.membership)
        ),
    ))
}

/// A membership carried in a message: some voters, a bounded number of nodes, sane ids and
/// addresses.
fn carried_membership(field: &'static str, membership: &Membership<NodeId, Node>) -> Checked {
    if membership.voter_ids().next().is_none() {
        return Err(Refusal::invalid(field, "no voters"));
    }
    if membership.nodes().count() > limits::PEER_MAX_MEMBERS {
        return Err(Refusal::invalid(
            field,
            format!("more than {} nodes", limits::PEER_MAX_MEMBERS),
        ));
    }
    for (node_id, node) in membership.nodes() {
        node_id_field(field, *node_id)?;
        address(field, &node.peer_addr)?;
        address(field, &node.api_addr)?;
    }
    Ok(())
}

fn node_id_field(field: &'static str, node_id: NodeId) -> Checked {
    if node_id == 0 {
        return Err(Refusal::invalid(field, "node id 0; node ids start at 1"));
    }
    Ok(())
}

fn address(field: &'static str, address: &str) -> Checked {
    if address.is_empty() || address.len() > limits::PEER_MAX_ADDRESS_BYTES {
        return Err(Refusal::invalid(
            field,
            format!(
                "an address of {} bytes; an address has 1 to {}",
                address.len(),
                limits::PEER_MAX_ADDRESS_BYTES
            ),
        ));
    }
    Ok(())
}

fn is_member(membership: &Membership<NodeId, Node>, node_id: NodeId) -> bool {
    membership.get_node(&node_id).is_some()
}

fn describe_members(membership: &Membership<NodeId, Node>) -> String {
    let ids: Vec<String> = membership.nodes().map(|(id, _)| id.to_string()).collect();
    if ids.is_empty() {
        "none known".to_owned()
    } else {
        format!("members {}", ids.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::storage::SnapshotMeta;
    use openraft::{CommittedLeaderId, Entry, StoredMembership};
    use trunkline_core::{Command, Request};

    use super::*;

    fn node(id: NodeId) -> Node {
        Node {
            peer_addr: format!("10.0.0.{id}:7000"),
            api_addr: format!("10.0.0.{id}:8000"),
        }
    }

    /// Voters `voters`, learners `learners`.
    fn membership(voters: &[NodeId], learners: &[NodeId]) -> Membership<NodeId, Node> {
        let nodes: BTreeMap<NodeId, Node> = voters
            .iter()
            .chain(learners)
            .map(|id| (*id, node(*id)))
            .collect();
        Membership::new(vec![voters.iter().copied().collect::<BTreeSet<_>>()], nodes)
    }

    /// Node 1 of voters {1, 2, 3} and learner 4, following leader 2 at term 5.
    fn follower() -> PeerView {
        PeerView {
            node_id: 1,
            vote: Vote::new_committed(5, 2),
            membership: membership(&[1, 2, 3], &[4]),
            leading_with_live_quorum: false,
            has_live_leader: true,
        }
    }

    /// Node 1 leading term 5 with a live quorum.
    fn leader() -> PeerView {
        PeerView {
            vote: Vote::new_committed(5, 1),
            leading_with_live_quorum: true,
            ..follower()
        }
    }

    /// A brand-new node 4 waiting to be joined: no vote, no membership, no leader.
    fn blank() -> PeerView {
        PeerView {
            node_id: 4,
            vote: Vote::default(),
            membership: Membership::new(vec![], BTreeMap::new()),
            leading_with_live_quorum: false,
            has_live_leader: false,
        }
    }

    fn log_id(term: u64, leader: NodeId, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, leader), index)
    }

    fn blank_entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(term, 2, index),
            payload: EntryPayload::Blank,
        }
    }

    fn normal_entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(term, 2, index),
            payload: EntryPayload::Normal(Request {
                idempotency: None,
                time_ms: 1,
                actor: None,
                command: Command::Tick,
            }),
        }
    }

    fn membership_entry(
        term: u64,
        index: u64,
        membership: Membership<NodeId, Node>,
    ) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(term, 0, index),
            payload: EntryPayload::Membership(membership),
        }
    }

    fn append(
        vote: Vote<NodeId>,
        prev: Option<LogId<NodeId>>,
        entries: Vec<Entry<TypeConfig>>,
        commit: Option<LogId<NodeId>>,
    ) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote,
            prev_log_id: prev,
            entries,
            leader_commit: commit,
        }
    }

    /// `None` when the message passes; else the field it is refused on and the code.
    type Expected = Option<(&'static str, tonic::Code)>;

    fn check(result: Checked, expected: Expected) {
        let got = result
            .err()
            .map(|refusal| (refusal.field, refusal.code, refusal.reason));
        match (got, expected) {
            (None, None) => {}
            (Some((field, code, _)), Some((want_field, want_code)))
                if field == want_field && code == want_code => {}
            (got, expected) => panic!("got {got:?}, expected {expected:?}"),
        }
    }

    const INVALID: tonic::Code = tonic::Code::InvalidArgument;
    const PRECONDITION: tonic::Code = tonic::Code::FailedPrecondition;

    #[test]
    fn append_entries_vote() {
        let heartbeat = |vote| append(vote, Some(log_id(1, 2, 10)), vec![], None);
        let cases: Vec<(&str, PeerView, Vote<NodeId>, Expected)> = vec![
            (
                "the leader's heartbeat",
                follower(),
                Vote::new_committed(5, 2),
                None,
            ),
            (
                "a new leader, one term on",
                follower(),
                Vote::new_committed(6, 3),
                None,
            ),
            (
                "a term that overflows at the next election",
                follower(),
                Vote::new_committed(u64::MAX, 2),
                Some(("vote.leader_id.term", INVALID)),
            ),
            (
                "a term above the ceiling",
                PeerView {
                    vote: Vote::new_committed(limits::PEER_MAX_TERM, 2),
                    ..follower()
                },
                Vote::new_committed(limits::PEER_MAX_TERM + 1, 2),
                Some(("vote.leader_id.term", INVALID)),
            ),
            (
                "the largest jump",
                follower(),
                Vote::new_committed(5 + limits::PEER_MAX_TERM_JUMP, 2),
                None,
            ),
            (
                "one more than the largest jump",
                follower(),
                Vote::new_committed(6 + limits::PEER_MAX_TERM_JUMP, 2),
                Some(("vote.leader_id.term", INVALID)),
            ),
            (
                "an uncommitted vote",
                follower(),
                Vote::new(6, 2),
                Some(("vote.committed", INVALID)),
            ),
            (
                "this node's own id",
                follower(),
                Vote::new_committed(6, 1),
                Some(("vote.leader_id.node_id", INVALID)),
            ),
            (
                "a node that does not exist, to a node with a live leader",
                follower(),
                Vote::new_committed(6, 99),
                Some(("vote.leader_id.node_id", PRECONDITION)),
            ),
            (
                "an unknown node, to a member that has no live leader",
                PeerView {
                    has_live_leader: false,
                    ..follower()
                },
                Vote::new_committed(6, 99),
                None,
            ),
            (
                "a learner as leader (it may have been promoted since)",
                follower(),
                Vote::new_committed(6, 4),
                None,
            ),
            (
                "another leader while this node leads with a live quorum",
                leader(),
                Vote::new_committed(6, 2),
                Some(("vote", PRECONDITION)),
            ),
            (
                "another leader of this node's own term while it leads",
                leader(),
                Vote::new_committed(5, 2),
                Some(("vote", PRECONDITION)),
            ),
            (
                "an older leader while this node leads (openraft refuses it itself)",
                leader(),
                Vote::new_committed(4, 2),
                None,
            ),
            (
                "a leader whose quorum lapsed may be replaced",
                PeerView {
                    leading_with_live_quorum: false,
                    ..leader()
                },
                Vote::new_committed(6, 2),
                None,
            ),
            (
                "a blank node's first heartbeat",
                blank(),
                Vote::new_committed(3, 1),
                None,
            ),
            (
                "a blank node and a term beyond the jump",
                blank(),
                Vote::new_committed(limits::PEER_MAX_TERM_JUMP + 1, 1),
                Some(("vote.leader_id.term", INVALID)),
            ),
        ];
        for (name, view, vote, expected) in cases {
            eprintln!("case: {name}");
            check(append_entries(&heartbeat(vote), &view), expected);
        }
    }

    #[test]
    fn append_entries_log_positions() {
        let vote = Vote::new_committed(5, 2);
        let cases: Vec<(&str, AppendEntriesRequest<TypeConfig>, Expected)> = vec![
            (
                "entries following prev_log_id",
                append(
                    vote,
                    Some(log_id(4, 3, 10)),
                    vec![blank_entry(5, 11), normal_entry(5, 12)],
                    Some(log_id(5, 2, 12)),
                ),
                None,
            ),
            (
                "a commit index past the entries sent (a follower catching up)",
                append(
                    vote,
                    Some(log_id(4, 3, 10)),
                    vec![blank_entry(5, 11)],
                    Some(log_id(5, 2, 500)),
                ),
                None,
            ),
            (
                "a gap after prev_log_id",
                append(vote, Some(log_id(4, 3, 10)), vec![blank_entry(5, 12)], None),
                Some(("entries.log_id.index", INVALID)),
            ),
            (
                "a gap between entries",
                append(
                    vote,
                    Some(log_id(4, 3, 10)),
                    vec![blank_entry(5, 11), blank_entry(5, 13)],
                    None,
                ),
                Some(("entries.log_id.index", INVALID)),
            ),
            (
                "the log from its start must begin at index 0",
                append(vote, None, vec![blank_entry(5, 1)], None),
                Some(("entries.log_id.index", INVALID)),
            ),
            (
                "an entry at index u64::MAX",
                append(
                    vote,
                    Some(log_id(5, 2, u64::MAX - 1)),
                    vec![blank_entry(5, u64::MAX)],
                    None,
                ),
                Some(("prev_log_id", INVALID)),
            ),
            (
                "an entry beyond the largest index",
                append(
                    vote,
                    Some(log_id(5, 2, limits::PEER_MAX_LOG_INDEX)),
                    vec![blank_entry(5, limits::PEER_MAX_LOG_INDEX + 1)],
                    None,
                ),
                Some(("entries.log_id", INVALID)),
            ),
            (
                "an entry of a later term than the leader's",
                append(vote, Some(log_id(4, 3, 10)), vec![blank_entry(6, 11)], None),
                Some(("entries.log_id", INVALID)),
            ),
            (
                "terms going back along the entries",
                append(
                    vote,
                    Some(log_id(4, 3, 10)),
                    vec![blank_entry(5, 11), blank_entry(4, 12)],
                    None,
                ),
                Some(("entries.log_id.leader_id.term", INVALID)),
            ),
            (
                "a first entry of an earlier term than prev_log_id",
                append(vote, Some(log_id(5, 3, 10)), vec![blank_entry(4, 11)], None),
                Some(("entries.log_id.leader_id.term", INVALID)),
            ),
            (
                "prev_log_id of a later term than the leader's",
                append(vote, Some(log_id(6, 3, 10)), vec![], None),
                Some(("prev_log_id", INVALID)),
            ),
            (
                "a commit index near overflow",
                append(vote, None, vec![], Some(log_id(5, 2, u64::MAX))),
                Some(("leader_commit", INVALID)),
            ),
            (
                "one entry more than a batch holds",
                append(
                    vote,
                    None,
                    (0..=limits::RAFT_MAX_PAYLOAD_ENTRIES)
                        .map(|index| blank_entry(5, index))
                        .collect(),
                    None,
                ),
                Some(("entries", INVALID)),
            ),
            (
                "a full batch",
                append(
                    vote,
                    None,
                    (0..limits::RAFT_MAX_PAYLOAD_ENTRIES)
                        .map(|index| blank_entry(5, index))
                        .collect(),
                    None,
                ),
                None,
            ),
            (
                "a membership with no voters",
                append(
                    vote,
                    None,
                    vec![membership_entry(5, 0, membership(&[], &[2]))],
                    None,
                ),
                Some(("entries.payload.membership", INVALID)),
            ),
        ];
        for (name, request, expected) in cases {
            eprintln!("case: {name}");
            check(append_entries(&request, &follower()), expected);
        }
    }

    #[test]
    fn a_blank_node_being_joined_accepts_its_leader_and_learns_membership_from_the_entries() {
        // The leader's first entries to a new node: the membership entry at index 0 names it.
        let first = append(
            Vote::new_committed(3, 1),
            None,
            vec![
                membership_entry(0, 0, membership(&[1], &[])),
                normal_entry(1, 1),
            ],
            None,
        );
        check(append_entries(&first, &blank()), None);
        // Once the node follows a live leader, a stranger is refused even if it carries a
        // membership that does not name it.
        let live = PeerView {
            has_live_leader: true,
            membership: membership(&[1], &[4]),
            vote: Vote::new_committed(3, 1),
            ..blank()
        };
        let stranger = append(
            Vote::new_committed(4, 99),
            None,
            vec![membership_entry(0, 0, membership(&[1], &[]))],
            None,
        );
        check(
            append_entries(&stranger, &live),
            Some(("vote.leader_id.node_id", PRECONDITION)),
        );
        // A member that missed the change adding leader 7 learns it from the entries.
        let new_leader = append(
            Vote::new_committed(4, 7),
            Some(log_id(3, 1, 5)),
            vec![membership_entry(4, 6, membership(&[1, 7], &[4]))],
            None,
        );
        check(append_entries(&new_leader, &live), None);
    }

    #[test]
    fn a_node_being_joined_keeps_accepting_the_leader_it_follows_before_it_knows_membership() {
        // The leader's first message probed where the logs meet and carried no entries: the
        // node follows leader 1 at term 3 but knows no membership yet.
        let following = PeerView {
            has_live_leader: true,
            vote: Vote::new_committed(3, 1),
            ..blank()
        };
        let heartbeat = append(
            Vote::new_committed(3, 1),
            Some(log_id(3, 1, 40)),
            vec![],
            None,
        );
        check(append_entries(&heartbeat, &following), None);
        let entries = append(
            Vote::new_committed(3, 1),
            Some(log_id(3, 1, 40)),
            vec![normal_entry(3, 41)],
            Some(log_id(3, 1, 41)),
        );
        check(append_entries(&entries, &following), None);
        // Re-elected at a later term, it is still the leader this node follows.
        let reelected = append(
            Vote::new_committed(4, 1),
            Some(log_id(3, 1, 40)),
            vec![],
            None,
        );
        check(append_entries(&reelected, &following), None);
        // Another node claiming leadership while this one follows a live leader is still a
        // stranger, at this term or a later one.
        for vote in [Vote::new_committed(3, 99), Vote::new_committed(4, 99)] {
            let stranger = append(vote, Some(log_id(3, 1, 40)), vec![], None);
            check(
                append_entries(&stranger, &following),
                Some(("vote.leader_id.node_id", PRECONDITION)),
            );
        }
    }

    #[test]
    fn vote_requests() {
        let request = |vote, last| VoteRequest::new(vote, last);
        let cases: Vec<(&str, PeerView, VoteRequest<NodeId>, Expected)> = vec![
            (
                "a voter campaigning",
                follower(),
                request(Vote::new(6, 3), Some(log_id(5, 2, 10))),
                None,
            ),
            (
                "a candidate with an empty log",
                follower(),
                request(Vote::new(6, 3), None),
                None,
            ),
            (
                "a learner known here (promoted since, as far as this node knows)",
                follower(),
                request(Vote::new(6, 4), None),
                None,
            ),
            (
                "u64::MAX from a node that does not exist",
                follower(),
                request(Vote::new(u64::MAX, 99), None),
                Some(("vote.leader_id.term", INVALID)),
            ),
            (
                "a huge term from a member",
                follower(),
                request(Vote::new(1 << 40, 3), None),
                Some(("vote.leader_id.term", INVALID)),
            ),
            (
                "a plausible term from a node that does not exist",
                follower(),
                request(Vote::new(6, 99), None),
                Some(("vote.leader_id.node_id", PRECONDITION)),
            ),
            (
                "any candidate, to a blank node",
                blank(),
                request(Vote::new(1, 1), None),
                Some(("vote.leader_id.node_id", PRECONDITION)),
            ),
            (
                "a committed vote",
                follower(),
                request(Vote::new_committed(6, 3), None),
                Some(("vote.committed", INVALID)),
            ),
            (
                "this node's own id",
                follower(),
                request(Vote::new(6, 1), None),
                Some(("vote.leader_id.node_id", INVALID)),
            ),
            (
                "term 0",
                blank(),
                request(Vote::new(0, 1), None),
                Some(("vote.leader_id.term", INVALID)),
            ),
            (
                "a last log id of a later term than the candidate's",
                follower(),
                request(Vote::new(6, 3), Some(log_id(7, 3, 10))),
                Some(("last_log_id", INVALID)),
            ),
            (
                "a last log index near overflow",
                follower(),
                request(Vote::new(6, 3), Some(log_id(5, 3, u64::MAX))),
                Some(("last_log_id", INVALID)),
            ),
            (
                "a candidate while this node leads with a live quorum",
                leader(),
                request(Vote::new(6, 3), Some(log_id(5, 1, 10))),
                Some(("vote", PRECONDITION)),
            ),
        ];
        for (name, view, request, expected) in cases {
            eprintln!("case: {name}");
            check(vote(&request, &view), expected);
        }
    }

    fn snapshot(
        vote: Vote<NodeId>,
        offset: u64,
        data_bytes: usize,
        last_log_id: Option<LogId<NodeId>>,
        members: Membership<NodeId, Node>,
    ) -> InstallSnapshotRequest<TypeConfig> {
        InstallSnapshotRequest {
            vote,
            meta: SnapshotMeta {
                last_log_id,
                last_membership: StoredMembership::new(Some(log_id(1, 1, 2)), members),
                snapshot_id: "5-2-100-1".to_owned(),
            },
            offset,
            data: vec![0; data_bytes],
            done: false,
        }
    }

    #[test]
    fn install_snapshot_chunks() {
        let vote = Vote::new_committed(5, 2);
        let last = Some(log_id(5, 2, 100));
        let members = || membership(&[1, 2, 3], &[]);
        let progress = SnapshotProgress {
            snapshot_id: "5-2-100-1".to_owned(),
            received_bytes: 8192,
        };
        let chunk = limits::RAFT_SNAPSHOT_CHUNK_BYTES as usize;
        let cases: Vec<(&str, InstallSnapshotRequest<TypeConfig>, Expected)> = vec![
            (
                "the first chunk",
                snapshot(vote, 0, chunk, last, members()),
                None,
            ),
            (
                "the next chunk",
                snapshot(vote, 8192, 10, last, members()),
                None,
            ),
            (
                "a resent chunk",
                snapshot(vote, 4096, 10, last, members()),
                None,
            ),
            (
                "a chunk past what arrived",
                snapshot(vote, 8193, 10, last, members()),
                Some(("offset", INVALID)),
            ),
            (
                "an offset that would allocate terabytes",
                snapshot(vote, 1 << 40, 10, last, members()),
                Some(("offset", INVALID)),
            ),
            (
                "a chunk larger than a chunk",
                snapshot(vote, 0, chunk + 1, last, members()),
                Some(("data", INVALID)),
            ),
            (
                "no last log id",
                snapshot(vote, 0, 10, None, members()),
                Some(("meta.last_log_id", INVALID)),
            ),
            (
                "a last log id near overflow",
                snapshot(vote, 0, 10, Some(log_id(5, 2, u64::MAX)), members()),
                Some(("meta.last_log_id", INVALID)),
            ),
            (
                "a membership after the snapshot's end",
                snapshot(vote, 0, 10, Some(log_id(1, 1, 1)), members()),
                Some(("meta.last_membership.log_id", INVALID)),
            ),
            (
                "a membership without voters",
                snapshot(vote, 0, 10, last, membership(&[], &[2])),
                Some(("meta.last_membership", INVALID)),
            ),
            (
                "a term of u64::MAX",
                snapshot(Vote::new_committed(u64::MAX, 2), 0, 10, last, members()),
                Some(("vote.leader_id.term", INVALID)),
            ),
            (
                "a leader that does not exist",
                snapshot(Vote::new_committed(6, 99), 0, 10, last, members()),
                Some(("vote.leader_id.node_id", PRECONDITION)),
            ),
        ];
        for (name, request, expected) in cases {
            eprintln!("case: {name}");
            check(
                install_snapshot(&request, &follower(), Some(&progress)),
                expected,
            );
        }
        // Another snapshot's progress does not count: its chunks start again at 0.
        let other = SnapshotProgress {
            snapshot_id: "other".to_owned(),
            received_bytes: 1 << 20,
        };
        check(
            install_snapshot(
                &snapshot(vote, 4096, 10, last, members()),
                &follower(),
                Some(&other),
            ),
            Some(("offset", INVALID)),
        );
        // A blank node takes its first snapshot from a leader the snapshot names.
        check(
            install_snapshot(
                &snapshot(
                    Vote::new_committed(3, 2),
                    0,
                    10,
                    last.map(|_| log_id(3, 2, 100)),
                    members(),
                ),
                &blank(),
                None,
            ),
            None,
        );
    }

    #[test]
    fn forwarded_requests_pings_and_empty_payloads() {
        let add = |node_id, peer_addr: &str| LeaderRequest::AddLearner {
            node_id,
            node: Node {
                peer_addr: peer_addr.to_owned(),
                api_addr: "10.0.0.5:8000".to_owned(),
            },
        };
        let cases: Vec<(&str, Checked, Expected)> = vec![
            ("a join", forward(&add(5, "10.0.0.5:7000")), None),
            (
                "a join of node 0",
                forward(&add(0, "10.0.0.5:7000")),
                Some(("node_id", INVALID)),
            ),
            (
                "a join with no address",
                forward(&add(5, "")),
                Some(("node.peer_addr", INVALID)),
            ),
            (
                "a join with a megabyte address",
                forward(&add(5, &"a".repeat(1 << 20))),
                Some(("node.peer_addr", INVALID)),
            ),
            (
                "a promotion of node 0",
                forward(&LeaderRequest::Promote { node_id: 0 }),
                Some(("node_id", INVALID)),
            ),
            ("a read index", forward(&LeaderRequest::ReadIndex), None),
            ("a ping from node 2", ping(2, 1), None),
            ("a ping from node 0", ping(0, 1), Some(("sender", INVALID))),
            (
                "a ping from this node",
                ping(1, 1),
                Some(("sender", INVALID)),
            ),
            ("a hello", empty_payload(&[]), None),
            (
                "a hello with bytes",
                empty_payload(&[1]),
                Some(("payload", INVALID)),
            ),
        ];
        for (name, result, expected) in cases {
            eprintln!("case: {name}");
            check(result, expected);
        }
    }

    #[test]
    fn a_refusal_becomes_a_status_naming_the_field() {
        let status: tonic::Status = Refusal::invalid("vote.leader_id.term", "too big").into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("vote.leader_id.term"),
            "{status:?}"
        );
    }

    #[test]
    fn a_record_fetch_needs_a_range_in_order_and_a_resume_key_inside_it() {
        use crate::backfill::FetchRecordsRequest;
        let check = |since_ms, until_ms, after| {
            fetch_records(&FetchRecordsRequest {
                since_ms,
                until_ms,
                after,
            })
            .map_err(|refusal| refusal.field)
        };
        assert_eq!(check(0, 0, None), Ok(()), "a question of coverage only");
        assert_eq!(check(5, 10, Some((7, 3, 0))), Ok(()));
        assert_eq!(check(10, 5, None), Err("since_ms"));
        assert_eq!(check(5, 10, Some((10, 3, 0))), Err("after"));
        assert_eq!(check(5, 10, Some((4, u64::MAX, u32::MAX))), Err("after"));
    }
}
