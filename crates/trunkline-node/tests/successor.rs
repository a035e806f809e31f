//! Failover by successor on real processes: when the leader is killed, the survivors call
//! the election in the order of succession (the lowest id first) as soon as the others'
//! lease on the old leader ends, so a survivor that called it (not whichever survivor's own
//! timer fires first) becomes the leader, and writes come back. Twice, so each survivor
//! order is seen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::time::{Duration, Instant};

use support::*;

const SUCCESSOR_LINE: &str = "this node is its successor and calls an election";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_by_its_successor() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    for round in 0..2 {
        let old_leader = cluster.leader().await;
        let survivors: Vec<u64> = (1..=3).filter(|id| *id != old_leader).collect();
        let calls =
            |cluster: &TestCluster, id: u64| cluster.get(id).log().matches(SUCCESSOR_LINE).count();
        let calls_before: Vec<usize> = survivors.iter().map(|id| calls(&cluster, *id)).collect();
        let successor = survivors[0];
        cluster.node(old_leader).kill();
        let killed_at = Instant::now();

        // A write through the successor comes back once it leads.
        let client = cluster.get(successor).client();
        let written = loop {
            match set(&client, &format!("after-kill/{round}"), "1").await {
                Ok(written) => break written,
                Err(error) => {
                    assert!(
                        killed_at.elapsed() < Duration::from_secs(10),
                        "no write within 10 s of the kill: {error}\n{}",
                        cluster.logs()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        eprintln!(
            "round {round}: node {old_leader} killed, writes back after {:?}",
            killed_at.elapsed()
        );
        let new_leader = status(&client).await.unwrap().leader_id;
        let place = survivors.iter().position(|id| *id == new_leader);
        let called = place.is_some_and(|place| calls(&cluster, new_leader) > calls_before[place]);
        assert!(
            called,
            "round {round}: node {old_leader} killed, node {new_leader} leads without having \
             called the election as a successor\n{}",
            cluster.logs()
        );

        // The old leader comes back as a follower and catches up.
        cluster.node(old_leader).restart();
        let restarted = cluster.get(old_leader).client();
        assert_eq!(
            value_at(
                &restarted,
                &format!("after-kill/{round}"),
                written.applied_index
            )
            .await
            .as_deref(),
            Some("1")
        );
    }
}
