//! The archive of call records: what the state machine finishes is on disk in log order, the
//! same after a restart and a replay of the log, pruned by the replicated retention, and a node
//! that installed a snapshot says from when its archive is whole.

// Tests may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, Membership};
use trunkline_core::cdr::{Cdr, CdrCommand, Disposition, RETENTION_SETTING};
use trunkline_core::policy::SourceKind;
use trunkline_core::settings::SettingsCommand;
use trunkline_core::{Command, Request};
use trunkline_store::{Identity, Node, Store, TypeConfig};

const DAY_MS: u64 = 86_400_000;
const T0: u64 = 1_796_000_000_000;

fn identity(node_id: u64) -> Identity {
    Identity {
        cluster_name: "records".to_owned(),
        node_id,
    }
}

fn record(call_id: &str, disposition: Disposition) -> Cdr {
    Cdr {
        call_id: call_id.to_owned(),
        tenant: "acme".to_owned(),
        extension: None,
        source: SourceKind::Phone,
        from: "+12125550100".to_owned(),
        dialled: "9005551234".to_owned(),
        normalized: "+19005551234".to_owned(),
        class: None,
        node: 1,
        start_ms: T0,
        answer_ms: None,
        end_ms: None,
        disposition,
        reason: "policy-premium (tenant)".to_owned(),
        sip_code: 403,
        legs: Vec::new(),
        billed_ms: 0,
        cost_micros: 0,
    }
}

fn entry(index: u64, time_ms: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Request {
            time_ms,
            command,
            actor: None,
        }),
    }
}

fn records(index: u64, time_ms: u64, call_ids: &[&str]) -> Entry<TypeConfig> {
    let batch = call_ids
        .iter()
        .map(|call_id| record(call_id, Disposition::Blocked))
        .collect();
    entry(index, time_ms, Command::Cdr(CdrCommand::Record(batch)))
}

fn membership() -> Entry<TypeConfig> {
    let nodes = BTreeMap::from([(1, Node::default())]);
    Entry {
        log_id: log_id(1, 1, 0),
        payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], nodes)),
    }
}

fn call_ids(store: &Store, since_ms: u64, until_ms: u64) -> Vec<(u64, u64, String)> {
    store
        .cdr_archive()
        .scan(since_ms, until_ms)
        .map(|item| {
            let item = item.unwrap();
            (item.recorded_ms, item.log_index, item.cdr.call_id)
        })
        .collect()
}

#[tokio::test]
async fn finished_records_are_on_disk_in_log_order_and_a_replay_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let history = vec![
        membership(),
        records(1, T0, &["a", "b"]),
        // A routed call stays in the state until its end; then it is archived.
        entry(
            2,
            T0 + 10,
            Command::Cdr(CdrCommand::Record(vec![record(
                "c",
                Disposition::InProgress,
            )])),
        ),
        records(3, T0 + 20, &["d"]),
    ];
    {
        let store = Store::open(dir.path(), &identity(1)).unwrap();
        store.state_machine().apply(history.clone()).await.unwrap();
        assert_eq!(
            call_ids(&store, 0, u64::MAX),
            vec![
                (T0, 1, "a".to_owned()),
                (T0, 1, "b".to_owned()),
                (T0 + 20, 3, "d".to_owned()),
            ]
        );
        assert_eq!(store.reader().current().state.cdrs().open_count(), 1);
        // Time ranges are half-open: [since, until).
        assert_eq!(call_ids(&store, T0 + 1, T0 + 20), vec![]);
        assert_eq!(call_ids(&store, T0 + 20, T0 + 21).len(), 1);
        assert_eq!(call_ids(&store, T0 + 21, T0), vec![]);
    }
    // A restart with no snapshot applies the log again from the start: the same keys.
    let store = Store::open(dir.path(), &identity(1)).unwrap();
    assert_eq!(
        call_ids(&store, 0, u64::MAX).len(),
        3,
        "kept across a restart"
    );
    store.state_machine().apply(history).await.unwrap();
    assert_eq!(
        call_ids(&store, 0, u64::MAX).len(),
        3,
        "a replay adds nothing"
    );
    let stats = store.cdr_archive().stats().unwrap();
    assert_eq!(stats.records, 3);
    assert_eq!(stats.oldest_ms, Some(T0));
    assert_eq!(stats.complete_since_ms, 0);
}

#[tokio::test]
async fn records_older_than_the_retention_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &identity(1)).unwrap();
    let retention = entry(
        1,
        T0,
        Command::Settings(SettingsCommand::Set {
            key: RETENTION_SETTING.to_owned(),
            value: "2".to_owned(),
        }),
    );
    store
        .state_machine()
        .apply(vec![
            membership(),
            retention,
            records(2, T0, &["old"]),
            records(3, T0 + DAY_MS, &["day-1"]),
        ])
        .await
        .unwrap();
    assert_eq!(call_ids(&store, 0, u64::MAX).len(), 2);
    // Two days and a bit after the first: it is gone, the second is kept.
    store
        .state_machine()
        .apply(vec![records(4, T0 + 2 * DAY_MS + 1, &["day-2"])])
        .await
        .unwrap();
    let kept: Vec<String> = call_ids(&store, 0, u64::MAX)
        .into_iter()
        .map(|(_, _, call_id)| call_id)
        .collect();
    assert_eq!(kept, vec!["day-1".to_owned(), "day-2".to_owned()]);
}

#[tokio::test]
async fn a_node_that_installs_a_snapshot_says_its_archive_is_whole_only_after_it() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = Store::open(leader_dir.path(), &identity(1)).unwrap();
    let mut machine = leader.state_machine();
    machine
        .apply(vec![membership(), records(1, T0, &["before"])])
        .await
        .unwrap();
    let snapshot = machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let follower_dir = tempfile::tempdir().unwrap();
    let follower = Store::open(follower_dir.path(), &identity(2)).unwrap();
    let mut follower_machine = follower.state_machine();
    let mut received = follower_machine.begin_receiving_snapshot().await.unwrap();
    *received = *snapshot.snapshot;
    follower_machine
        .install_snapshot(&snapshot.meta, received)
        .await
        .unwrap();
    follower_machine
        .apply(vec![records(2, T0 + 5, &["after"])])
        .await
        .unwrap();

    let stats = follower.cdr_archive().stats().unwrap();
    assert_eq!(stats.complete_since_ms, T0 + 1);
    assert_eq!(
        call_ids(&follower, 0, u64::MAX).len(),
        1,
        "only what it applied"
    );
    assert_eq!(leader.cdr_archive().stats().unwrap().complete_since_ms, 0);
    drop(follower);
    drop(follower_machine);
    // The mark survives a restart.
    let follower = Store::open(follower_dir.path(), &identity(2)).unwrap();
    assert_eq!(
        follower.cdr_archive().stats().unwrap().complete_since_ms,
        T0 + 1
    );
}
