//! Three real `trunkline` processes on 127.0.0.1: replication, leader failover, restarts,
//! catch-up through a snapshot, and learners.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use trunkline_client::proto;

#[tokio::test(flavor = "multi_thread")]
async fn writes_replicate_survive_leader_kill_restarts_and_a_full_stop() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    let mut acknowledged: Vec<(String, String, u64)> = Vec::new();

    // A write through any node is readable on all.
    for node_id in 1..=3 {
        let key = format!("written-through/{node_id}");
        let response = set(&cluster.get(node_id).client(), &key, "v")
            .await
            .unwrap();
        assert!(response.succeeded);
        acknowledged.push((key, "v".into(), response.applied_index));
    }
    let last_index = acknowledged.last().unwrap().2;
    for node_id in 1..=3 {
        for (key, value, _) in &acknowledged {
            assert_eq!(
                value_at(&cluster.get(node_id).client(), key, last_index)
                    .await
                    .as_deref(),
                Some(value.as_str()),
                "{key} on node {node_id}"
            );
        }
    }

    // Kill -9 the leader: a new one is elected and writes through the survivors succeed
    // within 2 s.
    let old_leader = cluster.leader().await;
    cluster.node(old_leader).kill();
    let survivor = (1..=3).find(|id| *id != old_leader).unwrap();
    let killed_at = Instant::now();
    let response = loop {
        match set(&cluster.get(survivor).client(), "after-failover", "1").await {
            Ok(response) => break response,
            Err(error) => {
                assert!(
                    killed_at.elapsed() < Duration::from_secs(2),
                    "no write succeeded within 2 s of the leader kill: {error}\n{}",
                    cluster.logs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let failover = killed_at.elapsed();
    eprintln!("writes resumed {failover:?} after the leader kill");
    assert!(failover < Duration::from_secs(2), "took {failover:?}");
    acknowledged.push(("after-failover".into(), "1".into(), response.applied_index));
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);

    // Writes through each survivor keep working.
    for node_id in (1..=3).filter(|id| *id != old_leader) {
        let key = format!("survivor/{node_id}");
        let response = set(&cluster.get(node_id).client(), &key, "s")
            .await
            .unwrap();
        acknowledged.push((key, "s".into(), response.applied_index));
    }

    // The killed node restarts on its own data and catches up.
    cluster.node(old_leader).restart();
    let last_index = acknowledged
        .iter()
        .map(|(_, _, index)| *index)
        .max()
        .unwrap();
    let restarted = cluster.get(old_leader).client();
    for (key, value, _) in &acknowledged {
        assert_eq!(
            value_at(&restarted, key, last_index).await.as_deref(),
            Some(value.as_str())
        );
    }

    // Stop all three (one of them without a clean shutdown) and start them again: every
    // acknowledged write is there.
    cluster.node(1).kill();
    assert!(
        cluster.node(2).stop(),
        "node 2 did not stop cleanly:\n{}",
        cluster.get(2).log()
    );
    assert!(cluster.node(3).stop(), "node 3 did not stop cleanly");
    for node_id in 1..=3 {
        cluster.node(node_id).restart();
    }
    wait_for_leader(&cluster.get(1).client(), Duration::from_secs(10)).await;
    for node_id in 1..=3 {
        let client = cluster.get(node_id).client();
        for (key, value, _) in &acknowledged {
            assert_eq!(
                value_at(&client, key, last_index).await.as_deref(),
                Some(value.as_str()),
                "{key} on node {node_id} after a full restart"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fourth_node_catches_up_through_a_snapshot() {
    let _serial = serial();
    let mut args = FAST_RAFT.to_vec();
    args.extend([
        "--snapshot-logs-since-last",
        "20",
        "--max-in-snapshot-log-to-keep",
        "0",
    ]);
    let mut cluster = TestCluster::start(3, &args).await;
    let client = cluster.client();
    let mut last_index = 0;
    for n in 0..100 {
        last_index = set(&client, &format!("key/{n:03}"), &n.to_string())
            .await
            .unwrap()
            .applied_index;
    }
    // Wait until the leader has purged the log behind a snapshot, so a new node can only
    // catch up by installing it.
    let leader = cluster.leader().await;
    wait_for_snapshot(&cluster.get(leader).client(), 80, Duration::from_secs(10)).await;

    let node = TestNode::start(cluster.root.path(), 4, &args);
    cluster.nodes.push(node);
    cluster.join(4).await;
    let fourth = cluster.get(4).client();
    for n in 0..100 {
        assert_eq!(
            value_at(&fourth, &format!("key/{n:03}"), last_index).await,
            Some(n.to_string())
        );
    }
    let status = status(&fourth).await.unwrap();
    assert!(
        status.snapshot_index > 0,
        "node 4 caught up without a snapshot: {status:?}"
    );
    cluster.promote(4).await;
    let response = set(&cluster.get(4).client(), "after-join", "x")
        .await
        .unwrap();
    assert!(response.succeeded);
    let members = status_members(&cluster).await;
    assert_eq!(members, vec![(1, true), (2, true), (3, true), (4, true)]);
    cluster.node(4).kill();
}

async fn status_members(cluster: &TestCluster) -> Vec<(u64, bool)> {
    let status = status(&cluster.client()).await.unwrap();
    status
        .members
        .iter()
        .map(|member| {
            (
                member.node_id,
                member.role == proto::MemberRole::Voter as i32,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_learner_serves_reads_and_does_not_count_toward_the_quorum() {
    let _serial = serial();
    // Voters 1 and 2, learner 3. If the learner counted, 2 of 3 would still be a quorum
    // after node 2 dies.
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster {
        nodes: (1..=3)
            .map(|id| TestNode::start(root.path(), id, FAST_RAFT))
            .collect(),
        root,
    };
    cluster.init().await;
    cluster.join(2).await;
    cluster.promote(2).await;
    cluster.join(3).await;
    let written = set(&cluster.get(3).client(), "through-learner", "yes")
        .await
        .unwrap();
    assert_eq!(
        value_at(
            &cluster.get(3).client(),
            "through-learner",
            written.applied_index
        )
        .await
        .as_deref(),
        Some("yes")
    );
    assert_eq!(
        status_members(&cluster).await,
        vec![(1, true), (2, true), (3, false)]
    );

    let leader = cluster.leader().await;
    let other_voter = if leader == 1 { 2 } else { 1 };
    cluster.node(other_voter).kill();
    let error = set(&cluster.get(leader).client(), "without-quorum", "no")
        .await
        .unwrap_err();
    let code = error.status().map(|status| status.code());
    assert!(
        matches!(
            code,
            Some(tonic::Code::DeadlineExceeded | tonic::Code::Unavailable)
        ),
        "a write without a quorum of voters must fail: {error}"
    );
    // The learner still answers reads from its own state, and says how stale it may be.
    let read = get(
        &cluster.get(3).client(),
        "through-learner",
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(read.setting.unwrap().value, "yes");
    let read_state = read.read_state.unwrap();
    assert_eq!(read_state.node_id, 3);
    assert!(read_state.applied_index >= written.applied_index);
}
