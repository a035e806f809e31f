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
            idempotency: None,
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

/// The entry at `index` that sets the records' retention to `days`.
fn retention_days(index: u64, days: u32) -> Entry<TypeConfig> {
    entry(
        index,
        T0,
        Command::Settings(SettingsCommand::Set {
            key: RETENTION_SETTING.to_owned(),
            value: days.to_string(),
        }),
    )
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
    let retention = retention_days(1, 2);
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

/// The archive's segment files, oldest first.
fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("cdrs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

fn folder_bytes(files: &[std::path::PathBuf]) -> Vec<u64> {
    files
        .iter()
        .map(|file| std::fs::metadata(file).unwrap().len())
        .collect()
}

/// The first millisecond of the day after the one `time_ms` is in.
fn next_day(time_ms: u64) -> u64 {
    (time_ms / DAY_MS + 1) * DAY_MS
}

#[tokio::test]
async fn records_live_in_segment_files_and_a_replay_writes_no_byte_twice() {
    let dir = tempfile::tempdir().unwrap();
    let history = vec![
        membership(),
        records(1, T0, &["a", "b"]),
        records(2, T0 + 10, &["c"]),
    ];
    let written = {
        let store = Store::open(dir.path(), &identity(1)).unwrap();
        store.state_machine().apply(history.clone()).await.unwrap();
        let files = segments(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");
        folder_bytes(&files)
    };
    let store = Store::open(dir.path(), &identity(1)).unwrap();
    store.state_machine().apply(history).await.unwrap();
    assert_eq!(folder_bytes(&segments(dir.path())), written);
    store
        .state_machine()
        .apply(vec![records(3, T0 + 20, &["d"])])
        .await
        .unwrap();
    assert_eq!(
        call_ids(&store, 0, u64::MAX),
        vec![
            (T0, 1, "a".to_owned()),
            (T0, 1, "b".to_owned()),
            (T0 + 10, 2, "c".to_owned()),
            (T0 + 20, 3, "d".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_tail_torn_by_a_crash_is_cut_off_at_open_and_the_log_writes_it_again_once() {
    let dir = tempfile::tempdir().unwrap();
    let history = vec![
        membership(),
        records(1, T0, &["a", "b"]),
        records(2, T0 + 10, &["c", "d"]),
    ];
    {
        let store = Store::open(dir.path(), &identity(1)).unwrap();
        store.state_machine().apply(history.clone()).await.unwrap();
    }
    // The crash wrote only part of the last record.
    let files = segments(dir.path());
    let newest = files.last().unwrap();
    let length = std::fs::metadata(newest).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap();
    file.set_len(length - 7).unwrap();
    drop(file);

    let store = Store::open(dir.path(), &identity(1)).unwrap();
    let kept: Vec<String> = call_ids(&store, 0, u64::MAX)
        .into_iter()
        .map(|(_, _, call_id)| call_id)
        .collect();
    assert_eq!(kept, ["a", "b", "c"], "the whole records before the tear");
    // openraft applies the log after the last snapshot again.
    store.state_machine().apply(history).await.unwrap();
    store
        .state_machine()
        .apply(vec![records(3, T0 + 20, &["e"])])
        .await
        .unwrap();
    let kept: Vec<String> = call_ids(&store, 0, u64::MAX)
        .into_iter()
        .map(|(_, _, call_id)| call_id)
        .collect();
    assert_eq!(kept, ["a", "b", "c", "d", "e"]);
}

#[tokio::test]
async fn a_damaged_byte_in_an_older_segment_is_reported_never_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let day_2 = next_day(T0);
    {
        let store = Store::open(dir.path(), &identity(1)).unwrap();
        store
            .state_machine()
            .apply(vec![
                membership(),
                records(1, T0, &["a", "b", "c"]),
                records(2, day_2, &["d"]),
            ])
            .await
            .unwrap();
    }
    let files = segments(dir.path());
    assert_eq!(files.len(), 2, "one segment a day: {files:?}");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&files[0], bytes).unwrap();

    let store = Store::open(dir.path(), &identity(1)).unwrap();
    let items: Vec<_> = store.cdr_archive().scan(0, u64::MAX).collect();
    let error = items
        .iter()
        .find_map(|item| item.as_ref().err())
        .expect("the damage is reported");
    assert!(
        error.to_string().contains(&files[0].display().to_string()),
        "{error}"
    );
    assert!(items.last().unwrap().is_err(), "nothing after the damage");
    // The other day reads as ever.
    assert_eq!(call_ids(&store, day_2, u64::MAX).len(), 1);
}

#[tokio::test]
async fn an_impossible_length_is_damage_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &identity(1)).unwrap();
        store
            .state_machine()
            .apply(vec![
                membership(),
                records(1, T0, &["a"]),
                records(2, next_day(T0), &["b"]),
            ])
            .await
            .unwrap();
    }
    let files = segments(dir.path());
    let mut bytes = std::fs::read(&files[0]).unwrap();
    // The first frame's length, right after the 8-byte header.
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&files[0], bytes).unwrap();
    let store = Store::open(dir.path(), &identity(1)).unwrap();
    let first = store.cdr_archive().scan(0, u64::MAX).next().unwrap();
    let error = first.unwrap_err().to_string();
    assert!(error.contains("4294967295"), "{error}");
}

#[tokio::test]
async fn the_retention_deletes_whole_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &identity(1)).unwrap();
    let retention = retention_days(1, 1);
    let day_1 = next_day(T0);
    store
        .state_machine()
        .apply(vec![
            membership(),
            retention,
            records(2, T0, &["day-0"]),
            records(3, day_1, &["day-1"]),
            records(4, day_1 + DAY_MS, &["day-2"]),
        ])
        .await
        .unwrap();
    // A day after day 1 began: day 0 is wholly expired, its file gone; day 1 is kept.
    let files = segments(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let kept: Vec<String> = call_ids(&store, 0, u64::MAX)
        .into_iter()
        .map(|(_, _, call_id)| call_id)
        .collect();
    assert_eq!(kept, ["day-1", "day-2"]);
}

/// Opens a database as the previous build did, once the store that just closed it has let
/// go of its lock (sled's background writes may hold it a moment longer).
fn open_sled(path: &std::path::Path) -> sled::Db {
    let mut tries = 0;
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(error) if tries < 100 => {
                tries += 1;
                eprintln!("sled::open, try {tries}: {error}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(error) => panic!("sled::open: {error}"),
        }
    }
}

#[tokio::test]
async fn records_of_the_old_sled_tree_move_into_segments_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &identity(1)).unwrap();
        store
            .state_machine()
            .apply(vec![membership(), records(1, T0 + 50, &["new"])])
            .await
            .unwrap();
    }
    // What the previous build wrote: the database's encoding under a 20-byte key.
    {
        let db = open_sled(&dir.path().join("db"));
        let tree = db.open_tree("cdrs").unwrap();
        for (n, call_id) in ["old-1", "old-2"].iter().enumerate() {
            let mut key = Vec::new();
            key.extend_from_slice(&(T0 + 50).to_be_bytes());
            key.extend_from_slice(&1u64.to_be_bytes());
            key.extend_from_slice(&(n as u32).to_be_bytes());
            let value =
                trunkline_store::codec::encode(&record(call_id, Disposition::Blocked)).unwrap();
            tree.insert(key, value).unwrap();
        }
        db.flush().unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("cdrs")).unwrap();
    {
        let store = Store::open(dir.path(), &identity(1)).unwrap();
        let moved: Vec<String> = call_ids(&store, 0, u64::MAX)
            .into_iter()
            .map(|(_, _, call_id)| call_id)
            .collect();
        assert_eq!(moved, ["old-1", "old-2"]);
        assert_eq!(segments(dir.path()).len(), 1);
    }
    let db = open_sled(&dir.path().join("db"));
    assert!(
        db.open_tree("cdrs").unwrap().is_empty(),
        "the tree is emptied"
    );
}

#[tokio::test]
async fn records_appended_before_a_snapshot_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &identity(1)).unwrap();
        let mut machine = store.state_machine();
        machine
            .apply(vec![membership(), records(1, T0, &["a", "b"])])
            .await
            .unwrap();
        machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
    }
    // The snapshot covers entry 1: nothing applies it again.
    let store = Store::open(dir.path(), &identity(1)).unwrap();
    assert_eq!(call_ids(&store, 0, u64::MAX).len(), 2);
    assert_eq!(
        store.reader().current().last_applied.map(|log| log.index),
        Some(1)
    );
}

#[tokio::test]
async fn records_are_sealed_and_sealed_again_when_the_keys_rotate() {
    use std::sync::Arc;
    use trunkline_store::seal::KeyRing;
    const KEY_1: &str = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    const KEY_2: &str = "2 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n";
    let keys = |text: &str| Some(Arc::new(KeyRing::parse(text).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let day_1 = next_day(T0);
    {
        let store = Store::open_with_keys(dir.path(), &identity(1), keys(KEY_1)).unwrap();
        store
            .state_machine()
            .apply(vec![
                membership(),
                records(1, T0, &["a"]),
                records(2, day_1, &["b"]),
            ])
            .await
            .unwrap();
    }
    for file in segments(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(12).any(|window| window == b"+12125550100"),
            "{} holds a number in clear",
            file.display()
        );
    }
    {
        let both = format!("{KEY_1}{KEY_2}");
        let store = Store::open_with_keys(dir.path(), &identity(1), keys(&both)).unwrap();
        let done = store.resealer().reseal(|_| {}).unwrap();
        assert!(done.resealed >= 2, "{done:?}");
        // Appends carry on in the rewritten open segment.
        store
            .state_machine()
            .apply(vec![records(3, day_1 + 5, &["c"])])
            .await
            .unwrap();
    }
    let store = Store::open_with_keys(dir.path(), &identity(1), keys(KEY_2)).unwrap();
    let kept: Vec<String> = call_ids(&store, 0, u64::MAX)
        .into_iter()
        .map(|(_, _, call_id)| call_id)
        .collect();
    assert_eq!(kept, ["a", "b", "c"]);
}
