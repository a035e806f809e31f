//! Group commit on real processes: writes sent at once through the leader and through a
//! follower share Raft entries (a handful for hundreds of writes), and each write still gets
//! its own answer and lands on every node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::collections::BTreeSet;

use support::*;

const WRITES_PER_NODE: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_at_once_share_entries_and_each_gets_its_own_answer() {
    let _serial = serial();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // Every write at once: half to the leader, half to a follower (forwarded).
    let mut writes = tokio::task::JoinSet::new();
    for (node, side) in [(leader, "leader"), (follower, "follower")] {
        let client = std::sync::Arc::new(cluster.get(node).client());
        for n in 0..WRITES_PER_NODE {
            let client = client.clone();
            let key = format!("group.{side}.{n}");
            writes.spawn(async move {
                let value = format!("{n}");
                let written = set(&client, &key, &value).await.unwrap();
                (key, value, written)
            });
        }
    }
    let mut answers = Vec::new();
    while let Some(answer) = writes.join_next().await {
        answers.push(answer.unwrap());
    }
    assert_eq!(answers.len(), 2 * WRITES_PER_NODE);

    // Each answer is its own write's: its key, its value, the first version.
    for (key, value, written) in &answers {
        let current = written.current.as_ref().unwrap();
        assert_eq!((&current.key, &current.value), (key, value));
        assert_eq!(current.version, 1);
    }
    // Entries were shared: one entry per write would give as many indexes as writes. One
    // batch of small writes in flight per node makes each batch all that queued behind the
    // last: a few entries (4 here; with four batches in flight, 10).
    let indexes: BTreeSet<u64> = answers
        .iter()
        .map(|(_, _, written)| written.applied_index)
        .collect();
    println!("{} writes in {} entries", answers.len(), indexes.len());
    assert!(
        indexes.len() * 30 <= answers.len(),
        "{} writes took {} entries",
        answers.len(),
        indexes.len()
    );

    // Every node holds every write once it has applied the last of them.
    let last = *indexes.last().unwrap();
    for id in 1..=3 {
        let client = cluster.get(id).client();
        for (key, value, _) in answers.iter().step_by(7) {
            assert_eq!(
                value_at(&client, key, last).await.as_deref(),
                Some(value.as_str()),
                "node {id}, {key}"
            );
        }
    }
}
