//! Forged and malformed messages on the peer listener, sent to real `trunkline` processes by
//! a client that knows only the cluster name (which any ClusterStatus tells): each is refused
//! with the field it got wrong, and the cluster keeps taking writes, also after a restart.
//!
//! With TLS such a client can't connect at all (see `tls.rs`); these nodes run `--insecure`
//! so the messages reach `peer_check`, the line behind mTLS that also holds against a member
//! whose key was stolen.
//!
//! The first test is the regression for issue 10, item 3: one AppendEntries with a vote of
//! term `u64::MAX` for a node 99 made a node follow a leader that does not exist, persisted
//! that vote, and panicked inside openraft at every later election.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::time::Duration;

use openraft::{
    raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest},
    storage::SnapshotMeta,
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StoredMembership, Vote,
};
use support::*;
use tonic::{transport::Channel, Code};
use trunkline_api::v1::internal::{raft_service_client::RaftServiceClient, RaftPayload};
use trunkline_store::{Node, TypeConfig};

/// A client of `node`'s peer listener.
fn peer(node: &TestNode) -> RaftServiceClient<Channel> {
    trunkline_node::network::Dialer::new(None)
        .client(node.node_id, &node.peer_addr)
        .unwrap()
}

/// A message as a stranger that knows the cluster name would send it.
fn message(payload: Vec<u8>) -> tonic::Request<RaftPayload> {
    let mut request = tonic::Request::new(RaftPayload {
        cluster_name: "test".into(),
        payload,
    });
    request.set_timeout(Duration::from_secs(5));
    request
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).unwrap()
}

fn heartbeat(vote: Vote<u64>) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote,
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    }
}

fn log_id(term: u64, node_id: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, node_id), index)
}

/// Asserts the call was refused with `code` and a message naming `field`.
fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    field: &str,
) {
    match result {
        Ok(response) => panic!("{what}: accepted: {response:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert!(
                status.message().contains(field),
                "{what}: the refusal does not name {field}: {status:?}"
            );
        }
    }
}

async fn write_succeeds(client: &trunkline_client::Client, key: &str, logs: impl Fn() -> String) {
    match set(client, key, "v").await {
        Ok(response) => assert!(response.succeeded),
        Err(error) => panic!("the write of {key} failed: {error}\n{}", logs()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_append_entries_of_term_u64_max_is_refused_and_writes_survive_a_restart() {
    let _serial = serial();
    let mut cluster = TestCluster::start(1, &[FAST_RAFT, INSECURE].concat()).await;
    let mut client = peer(cluster.get(1));

    let forged = heartbeat(Vote::new_committed(u64::MAX, 99));
    assert_refused(
        "AppendEntries of term u64::MAX from node 99",
        client.append_entries(message(encode(&forged))).await,
        Code::InvalidArgument,
        "vote.leader_id.term",
    );
    let forged =
        VoteRequest::<u64>::new(Vote::new(u64::MAX, 99), Some(log_id(u64::MAX, 99, 1 << 40)));
    assert_refused(
        "Vote of term u64::MAX from node 99",
        client.vote(message(encode(&forged))).await,
        Code::InvalidArgument,
        "vote.leader_id.term",
    );
    let forged = VoteRequest::<u64>::new(Vote::new(7, 99), None);
    assert_refused(
        "Vote of a plausible term from node 99",
        client.vote(message(encode(&forged))).await,
        Code::FailedPrecondition,
        "vote",
    );
    assert_refused(
        "a garbage payload",
        client.append_entries(message(vec![0xff; 7])).await,
        Code::InvalidArgument,
        "payload",
    );

    write_succeeds(&cluster.get(1).client(), "after-forgery", || cluster.logs()).await;
    let status = status(&cluster.get(1).client()).await.unwrap();
    assert!(status.term < 1000, "the term moved: {status:?}");
    assert_eq!(status.leader_id, 1);
    assert_eq!(status.refused_peer_messages, 4, "{status:?}");

    // The forged vote must not have been persisted: after a restart the node elects itself
    // and takes writes.
    assert!(cluster.node(1).stop(), "{}", cluster.logs());
    cluster.node(1).restart();
    wait_for_leader(&cluster.get(1).client(), Duration::from_secs(10)).await;
    write_succeeds(&cluster.get(1).client(), "after-restart", || cluster.logs()).await;
    let log = cluster.get(1).log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("refused a peer message"),
        "the refusal was not logged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_messages_neither_depose_the_leader_nor_reach_raft_on_a_follower() {
    let _serial = serial();
    let cluster = TestCluster::start(3, INSECURE).await;
    let leader_id = cluster.leader().await;
    let follower_id = (1..=3).find(|id| *id != leader_id).unwrap();
    let other_member = (1..=3)
        .find(|id| *id != leader_id && *id != follower_id)
        .unwrap();
    let before = status(&cluster.get(leader_id).client()).await.unwrap();
    let term = before.term;
    let mut leader = peer(cluster.get(leader_id));
    let mut follower = peer(cluster.get(follower_id));

    // One term more, from a member: before, each such message made the leader step down.
    let forged = heartbeat(Vote::new_committed(term + 1, other_member));
    assert_refused(
        "AppendEntries of the next term to the leader",
        leader.append_entries(message(encode(&forged))).await,
        Code::FailedPrecondition,
        "vote",
    );
    let forged = VoteRequest::<u64>::new(
        Vote::new(term + 1, other_member),
        Some(log_id(term, 1, 1 << 30)),
    );
    assert_refused(
        "Vote of the next term to the leader",
        leader.vote(message(encode(&forged))).await,
        Code::FailedPrecondition,
        "vote",
    );
    let after = status(&cluster.get(leader_id).client()).await.unwrap();
    assert_eq!(
        (after.leader_id, after.term),
        (leader_id, term),
        "the leader stepped down:\n{}",
        cluster.logs()
    );

    // A huge term from a member id.
    let forged = VoteRequest::<u64>::new(Vote::new(term + (1 << 40), other_member), None);
    assert_refused(
        "Vote of a huge term from a member",
        follower.vote(message(encode(&forged))).await,
        Code::InvalidArgument,
        "vote.leader_id.term",
    );
    // A leader that does not exist, at a plausible term, to a follower of a live leader.
    let forged = heartbeat(Vote::new_committed(term + 1, 99));
    assert_refused(
        "AppendEntries from node 99 to a follower",
        follower.append_entries(message(encode(&forged))).await,
        Code::FailedPrecondition,
        "vote.leader_id.node_id",
    );
    // An entry at index u64::MAX, in the real leader's name.
    let real_vote = Vote::new_committed(term, leader_id);
    let forged = AppendEntriesRequest::<TypeConfig> {
        vote: real_vote,
        prev_log_id: Some(log_id(term, leader_id, u64::MAX - 1)),
        entries: vec![Entry {
            log_id: log_id(term, leader_id, u64::MAX),
            payload: EntryPayload::Blank,
        }],
        leader_commit: Some(log_id(term, leader_id, u64::MAX)),
    };
    assert_refused(
        "AppendEntries with an entry at u64::MAX",
        follower.append_entries(message(encode(&forged))).await,
        Code::InvalidArgument,
        "prev_log_id",
    );
    // A snapshot chunk at an offset of a terabyte: the follower would allocate it.
    let members = Membership::new(
        vec![[leader_id].into_iter().collect()],
        [(
            leader_id,
            Node {
                peer_addr: cluster.get(leader_id).peer_addr.clone(),
                api_addr: cluster.get(leader_id).api_addr.clone(),
            },
        )]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>(),
    );
    let forged = InstallSnapshotRequest::<TypeConfig> {
        vote: real_vote,
        meta: SnapshotMeta {
            last_log_id: Some(log_id(term, leader_id, 5)),
            last_membership: StoredMembership::new(Some(log_id(term, leader_id, 1)), members),
            snapshot_id: "forged".into(),
        },
        offset: 1 << 40,
        data: vec![1; 16],
        done: false,
    };
    assert_refused(
        "InstallSnapshot at an offset of a terabyte",
        follower.install_snapshot(message(encode(&forged))).await,
        Code::InvalidArgument,
        "offset",
    );
    // A payload whose entry count claims u64::MAX / 2 entries: the vote, no prev_log_id, then
    // the length prefix and nothing after it.
    let mut payload = encode(&real_vote);
    payload.push(0);
    payload.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert_refused(
        "AppendEntries with a giant length prefix",
        follower.append_entries(message(payload)).await,
        Code::InvalidArgument,
        "payload",
    );
    assert_refused(
        "a hello with a payload",
        follower.hello(message(vec![1, 2, 3])).await,
        Code::InvalidArgument,
        "payload",
    );

    // Nothing reached Raft: the same leader and term everywhere, and writes go through any node.
    for node_id in 1..=3 {
        write_succeeds(
            &cluster.get(node_id).client(),
            &format!("after/{node_id}"),
            || cluster.logs(),
        )
        .await;
    }
    let after = status(&cluster.get(follower_id).client()).await.unwrap();
    assert_eq!(
        (after.leader_id, after.term),
        (leader_id, term),
        "{}",
        cluster.logs()
    );
    assert_eq!(after.refused_peer_messages, 6, "{after:?}");
    let leader_status = status(&cluster.get(leader_id).client()).await.unwrap();
    assert_eq!(leader_status.refused_peer_messages, 2, "{leader_status:?}");
}
