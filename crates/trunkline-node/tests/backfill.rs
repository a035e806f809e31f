//! Peer backfill of the call record archive, across real processes over real gRPC (TLS): a
//! node that catches up by installing a snapshot never applied the entries that made the
//! older records, and fetches them from a peer until its archive is whole again.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::time::{Duration, Instant};

use support::{
    routing::{outbound, put_tenant, route_outbound},
    *,
};
use trunkline_client::{proto, Client};

/// Waits until `check` holds for the node's listing, or panics with the last listing.
async fn eventually(
    client: &Client,
    within: Duration,
    what: &str,
    check: impl Fn(&[proto::CallRecord], u64) -> bool,
    logs: impl Fn() -> String,
) -> (Vec<proto::CallRecord>, u64) {
    let deadline = Instant::now() + within;
    loop {
        let (records, complete_since_ms) = call_records(client).await;
        if check(&records, complete_since_ms) {
            return (records, complete_since_ms);
        }
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}: {} records, complete since {complete_since_ms}\n{}",
            records.len(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_caught_up_by_snapshot_fetches_the_older_records_from_a_peer() {
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
    // A tenant without carriers: every lookup is a final "no route" record.
    let written = put_tenant(&client, "acme").await;
    const CALLS: usize = 120;
    for n in 0..CALLS {
        let answer = route_outbound(
            &client,
            outbound("acme", &format!("call-{n:03}@proxy"), "4155550100", written),
        )
        .await
        .unwrap();
        assert!(answer.refusal.is_some(), "{answer:?}");
    }
    let leader = cluster.leader().await;
    let leader_client = cluster.get(leader).client();
    let (expected, complete_since_ms) = eventually(
        &leader_client,
        Duration::from_secs(20),
        "every record on the leader",
        |records, _| records.len() == CALLS,
        || cluster.logs(),
    )
    .await;
    assert_eq!(complete_since_ms, 0);
    let last_record_index = expected.iter().map(|r| r.log_index).max().unwrap();

    // Enough writes after the records that the leader snapshots past them and purges its
    // log: a new node can only catch up by installing the snapshot.
    let mut last_index = 0;
    for n in 0..60 {
        last_index = set(&client, &format!("after/{n:03}"), "x")
            .await
            .unwrap()
            .applied_index;
    }
    wait_for_snapshot(
        &leader_client,
        last_record_index + 21,
        Duration::from_secs(20),
    )
    .await;

    let node = TestNode::start(cluster.root.path(), 4, &args);
    cluster.nodes.push(node);
    cluster.join(4).await;
    let fourth = cluster.get(4).client();
    assert!(value_at(&fourth, "after/059", last_index).await.is_some());
    let status = status(&fourth).await.unwrap();
    assert!(
        status.snapshot_index > last_record_index,
        "node 4 caught up without a snapshot: {status:?}"
    );

    // Without an operator: every record, the same as the leader's, and whole from the start.
    let (records, _) = eventually(
        &fourth,
        Duration::from_secs(60),
        "node 4's archive whole",
        |records, complete_since_ms| complete_since_ms == 0 && records.len() >= CALLS,
        || cluster.logs(),
    )
    .await;
    assert_eq!(records, expected);
    let log = cluster.get(4).log();
    assert!(
        log.contains("backfilled the call record archive"),
        "node 4 did not log its backfill:\n{log}"
    );

    // It stays whole through a restart, and records made later are there too.
    cluster.node(4).stop();
    cluster.node(4).restart();
    let (records, complete_since_ms) = call_records(&cluster.get(4).client()).await;
    assert_eq!(complete_since_ms, 0);
    assert_eq!(records, expected);
}
