//! The store's own promises, beyond openraft's suite: a data folder refuses the wrong node and
//! a second process without changing, snapshots carry the whole state, everything survives a
//! restart, and readers see each applied batch without disturbing the views they hold.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine, StorageHelper};
use openraft::testing::log_id;
use openraft::{
    Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder, StoredMembership,
    Vote,
};
use trunkline_core::settings::SettingsCommand;
use trunkline_core::{Command, Request, Response};
use trunkline_store::{AppliedState, Identity, Node, NodeId, Store, StoreError, TypeConfig};

fn identity(cluster_name: &str, node_id: NodeId) -> Identity {
    Identity {
        cluster_name: cluster_name.to_owned(),
        node_id,
    }
}

fn set(key: &str, value: &str) -> Request {
    Request {
        time_ms: 1_700_000_000_000,
        actor: None,
        idempotency: None,
        command: Command::Settings(SettingsCommand::Set {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
    }
}

fn delete(key: &str) -> Request {
    Request {
        time_ms: 1_700_000_000_000,
        actor: None,
        idempotency: None,
        command: Command::Settings(SettingsCommand::Delete {
            key: key.to_owned(),
        }),
    }
}

fn normal(index: u64, request: Request) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(request),
    }
}

/// A one-voter cluster: node 1.
fn one_node() -> Membership<NodeId, Node> {
    let nodes = BTreeMap::from([(
        1,
        Node {
            peer_addr: "127.0.0.1:7001".to_owned(),
            api_addr: "127.0.0.1:8001".to_owned(),
        },
    )]);
    Membership::new(vec![BTreeSet::from([1])], nodes)
}

fn membership(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Membership(one_node()),
    }
}

/// A small history: the initial membership, then settings writes.
fn history() -> Vec<Entry<TypeConfig>> {
    vec![
        membership(0),
        normal(1, set("route.default", "carrier-a")),
        normal(2, set("fraud.max_cps", "40")),
        normal(3, delete("route.default")),
        normal(4, set("route.default", "carrier-b")),
        normal(5, set("fraud.max_cps", "55")),
    ]
}

fn setting(applied: &AppliedState, key: &str) -> Option<String> {
    applied
        .state
        .settings()
        .get(key)
        .map(|setting| setting.value.clone())
}

/// Every file under `root` with its bytes, so two listings compare content, not just names.
fn folder_contents(root: &Path) -> io::Result<BTreeMap<PathBuf, Option<Vec<u8>>>> {
    let mut contents = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let relative = path
                .strip_prefix(root)
                .map_err(io::Error::other)?
                .to_owned();
            if path.is_dir() {
                contents.insert(relative, None);
                pending.push(path);
            } else {
                contents.insert(relative, Some(fs::read(&path)?));
            }
        }
    }
    Ok(contents)
}

#[tokio::test]
async fn a_folder_of_another_cluster_or_node_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let owner = identity("prod-east", 1);
    {
        let store = Store::open(dir.path(), &owner).unwrap();
        store.log_store().blocking_append(history()).await.unwrap();
        store.log_store().save_vote(&Vote::new(3, 1)).await.unwrap();
    }
    let before = folder_contents(dir.path()).unwrap();
    assert!(before.contains_key(Path::new("trunkline-identity.json")));

    for wrong in [identity("prod-east", 2), identity("prod-west", 1)] {
        let error = Store::open(dir.path(), &wrong).err().unwrap();
        match &error {
            StoreError::IdentityMismatch {
                path,
                found,
                expected,
            } => {
                assert_eq!(path, dir.path());
                assert_eq!(found, &owner);
                assert_eq!(expected, &wrong);
            }
            other => panic!("expected an identity mismatch, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains("prod-east") && message.contains("node 1"),
            "{message}"
        );
        assert_eq!(
            folder_contents(dir.path()).unwrap(),
            before,
            "{wrong} changed the folder"
        );
    }

    // The owner still opens it, with its data.
    let store = Store::open(dir.path(), &owner).unwrap();
    assert_eq!(
        store.log_store().read_vote().await.unwrap(),
        Some(Vote::new(3, 1))
    );
}

#[test]
fn a_folder_open_in_another_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let me = identity("prod-east", 1);
    let first = Store::open(dir.path(), &me).unwrap();

    let error = Store::open(dir.path(), &me).err().unwrap();
    assert!(
        matches!(&error, StoreError::InUse { path } if path == dir.path()),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("another trunkline process"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );

    // The lock goes with the last handle, not with the Store value.
    let log_store = first.log_store();
    drop(first);
    assert!(matches!(
        Store::open(dir.path(), &me),
        Err(StoreError::InUse { .. })
    ));
    drop(log_store);
    Store::open(dir.path(), &me).unwrap();
}

#[test]
fn a_foreign_folder_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), b"not trunkline").unwrap();
    fs::create_dir(dir.path().join("photos")).unwrap();
    let before = folder_contents(dir.path()).unwrap();

    let error = Store::open(dir.path(), &identity("prod-east", 1))
        .err()
        .unwrap();
    assert!(
        matches!(error, StoreError::NotADataFolder { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("notes.txt") && message.contains("photos"),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert_eq!(folder_contents(dir.path()).unwrap(), before);
}

#[test]
fn a_missing_folder_is_created_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("node-1");
    Store::open(&path, &identity("prod-east", 1)).unwrap();
    assert!(path.join("trunkline-identity.json").is_file());
}

#[tokio::test]
async fn a_snapshot_carries_the_whole_state_to_a_fresh_store() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = Store::open(leader_dir.path(), &identity("prod-east", 1)).unwrap();
    let mut leader_machine = leader.state_machine();
    let responses = leader_machine.apply(history()).await.unwrap();
    assert_eq!(responses.len(), history().len());
    assert_eq!(responses[0], Response::None);
    assert!(
        matches!(responses[1], Response::Settings(_)),
        "{:?}",
        responses[1]
    );

    let snapshot = leader_machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 5)));

    let follower_dir = tempfile::tempdir().unwrap();
    let follower = Store::open(follower_dir.path(), &identity("prod-east", 2)).unwrap();
    let mut follower_machine = follower.state_machine();
    let mut received = follower_machine.begin_receiving_snapshot().await.unwrap();
    *received = *snapshot.snapshot;
    follower_machine
        .install_snapshot(&snapshot.meta, received)
        .await
        .unwrap();

    let expected = leader.reader().current();
    let installed = follower.reader().current();
    assert_eq!(installed, expected);
    assert_eq!(
        setting(&installed, "route.default").as_deref(),
        Some("carrier-b")
    );
    assert_eq!(setting(&installed, "fraud.max_cps").as_deref(), Some("55"));
    assert_eq!(
        follower_machine.applied_state().await.unwrap(),
        (expected.last_applied, expected.membership.clone())
    );
    let current = follower_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test]
async fn snapshot_ids_are_unique_even_for_the_same_state_and_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let me = identity("prod-east", 1);
    let mut ids = BTreeSet::new();
    for _restart in 0..2 {
        let store = Store::open(dir.path(), &me).unwrap();
        let mut machine = store.state_machine();
        if store.reader().current().last_applied.is_none() {
            machine.apply(history()).await.unwrap();
        }
        for _build in 0..2 {
            let snapshot = machine
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            assert!(ids.insert(snapshot.meta.snapshot_id.clone()), "{ids:?}");
        }
    }
}

#[tokio::test]
async fn a_snapshot_whose_meta_disagrees_with_its_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &identity("prod-east", 1)).unwrap();
    let mut machine = store.state_machine();
    machine.apply(history()).await.unwrap();
    let snapshot = machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let other_dir = tempfile::tempdir().unwrap();
    let other = Store::open(other_dir.path(), &identity("prod-east", 2)).unwrap();
    let mut other_machine = other.state_machine();
    let mut meta = snapshot.meta.clone();
    meta.last_log_id = Some(log_id(1, 1, 99));
    let result = other_machine
        .install_snapshot(&meta, snapshot.snapshot)
        .await;
    assert!(result.is_err());
    assert_eq!(other.reader().current().last_applied, None);
    assert!(other_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn log_vote_committed_and_snapshot_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let me = identity("prod-east", 1);
    let entries = history();
    let snapshot_meta = {
        let store = Store::open(dir.path(), &me).unwrap();
        let mut log_store = store.log_store();
        let mut machine = store.state_machine();
        log_store.blocking_append(entries.clone()).await.unwrap();
        log_store
            .save_vote(&Vote::new_committed(2, 1))
            .await
            .unwrap();
        log_store
            .save_committed(Some(log_id(1, 1, 4)))
            .await
            .unwrap();
        // Applied up to 2 and snapshotted there; 3 and 4 are committed but not in the snapshot.
        machine.apply(entries[..3].to_vec()).await.unwrap();
        let snapshot = machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        snapshot.meta
    };

    let store = Store::open(dir.path(), &me).unwrap();
    let mut log_store = store.log_store();
    let mut machine = store.state_machine();
    let read_back = log_store.try_get_log_entries(..).await.unwrap();
    assert_eq!(
        read_back
            .iter()
            .map(|entry| entry.log_id)
            .collect::<Vec<_>>(),
        entries.iter().map(|entry| entry.log_id).collect::<Vec<_>>()
    );
    assert_eq!(
        format!("{:?}", read_back.last().map(|entry| &entry.payload)),
        format!("{:?}", entries.last().map(|entry| &entry.payload))
    );
    assert_eq!(
        log_store.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );
    assert_eq!(
        log_store.read_committed().await.unwrap(),
        Some(log_id(1, 1, 4))
    );
    let log_state = log_store.get_log_state().await.unwrap();
    assert_eq!(log_state.last_log_id, Some(log_id(1, 1, 5)));
    let current = machine.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot_meta);

    // The state machine starts from the snapshot ...
    let started = store.reader().current();
    assert_eq!(started.last_applied, Some(log_id(1, 1, 2)));
    assert_eq!(
        setting(&started, "route.default").as_deref(),
        Some("carrier-a")
    );

    // ... and openraft's start-up re-applies the committed entries after it.
    StorageHelper::new(&mut log_store, &mut machine)
        .get_initial_state()
        .await
        .unwrap();
    let restarted = store.reader().current();
    assert_eq!(restarted.last_applied, Some(log_id(1, 1, 4)));
    assert_eq!(
        setting(&restarted, "route.default").as_deref(),
        Some("carrier-b")
    );
    assert_eq!(setting(&restarted, "fraud.max_cps").as_deref(), Some("40"));
}

#[tokio::test]
async fn truncate_and_purge_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let me = identity("prod-east", 1);
    {
        let store = Store::open(dir.path(), &me).unwrap();
        let mut log_store = store.log_store();
        let mut machine = store.state_machine();
        log_store.blocking_append(history()).await.unwrap();
        // As openraft does: the log is purged only up to a snapshot.
        machine.apply(history()[..2].to_vec()).await.unwrap();
        machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        log_store.purge(log_id(1, 1, 1)).await.unwrap();
        log_store.truncate(log_id(1, 1, 4)).await.unwrap();
    }
    let store = Store::open(dir.path(), &me).unwrap();
    let mut log_store = store.log_store();
    let state = log_store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 1)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 3)));
    let indexes: Vec<u64> = log_store
        .try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.log_id.index)
        .collect();
    assert_eq!(indexes, [2, 3]);
    // Truncating into the purged prefix would open a hole: refused.
    assert!(log_store.truncate(log_id(1, 1, 1)).await.is_err());
}

#[tokio::test]
async fn an_append_with_a_hole_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &identity("prod-east", 1)).unwrap();
    let mut log_store = store.log_store();
    let result = log_store
        .blocking_append([normal(1, set("a", "1")), normal(3, set("a", "3"))])
        .await;
    assert!(result.is_err());
    assert_eq!(log_store.get_log_state().await.unwrap().last_log_id, None);
}

#[tokio::test]
async fn limited_reads_stop_at_the_byte_budget_but_never_return_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &identity("prod-east", 1)).unwrap();
    let mut log_store = store.log_store();
    let big = "x".repeat(trunkline_core::settings::MAX_VALUE_BYTES);
    let count = trunkline_store::MAX_READ_BYTES / big.len() * 2;
    let entries: Vec<_> = (1..=count as u64)
        .map(|index| normal(index, set("big", &big)))
        .collect();
    log_store.blocking_append(entries).await.unwrap();

    let limited = log_store
        .limited_get_log_entries(1, count as u64 + 1)
        .await
        .unwrap();
    assert!(
        !limited.is_empty() && limited.len() < count,
        "{}",
        limited.len()
    );
    assert_eq!(limited[0].log_id.index, 1);
    let full = log_store
        .try_get_log_entries(1..=count as u64)
        .await
        .unwrap();
    assert_eq!(full.len(), count);
    assert!(log_store
        .try_get_log_entries(3..3)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn readers_see_each_batch_and_keep_the_view_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &identity("prod-east", 1)).unwrap();
    let mut machine = store.state_machine();
    let reader = machine.reader();
    let mut waiter = reader.clone();

    let empty = reader.current();
    assert_eq!(*empty, AppliedState::default());

    let wait = tokio::spawn(async move { waiter.wait_for_applied(2).await });
    machine
        .apply(vec![
            membership(0),
            normal(1, set("a", "1")),
            normal(2, set("b", "2")),
        ])
        .await
        .unwrap();
    let first = reader.current();
    assert_eq!(first.last_applied, Some(log_id(1, 1, 2)));
    assert_eq!(setting(&first, "a").as_deref(), Some("1"));
    assert_eq!(
        first.membership,
        StoredMembership::new(Some(log_id(1, 1, 0)), one_node())
    );
    let waited = tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(Arc::ptr_eq(&waited, &first));

    let mut watcher = reader.clone();
    machine
        .apply(vec![normal(3, set("a", "3")), normal(4, delete("b"))])
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), watcher.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.last_applied, Some(log_id(1, 1, 4)));
    assert_eq!(setting(&second, "a").as_deref(), Some("3"));
    assert_eq!(setting(&second, "b"), None);

    // The views held before are untouched.
    assert_eq!(*empty, AppliedState::default());
    assert_eq!(first.last_applied, Some(log_id(1, 1, 2)));
    assert_eq!(setting(&first, "a").as_deref(), Some("1"));
    assert_eq!(setting(&first, "b").as_deref(), Some("2"));
}

#[tokio::test]
async fn an_entry_applied_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &identity("prod-east", 1)).unwrap();
    let mut machine = store.state_machine();
    machine.apply(vec![normal(1, set("a", "1"))]).await.unwrap();
    let before = store.reader().current();
    assert!(machine.apply(vec![normal(1, set("a", "2"))]).await.is_err());
    assert!(Arc::ptr_eq(&store.reader().current(), &before));
}

#[tokio::test]
async fn a_reader_learns_when_the_state_machine_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &identity("prod-east", 1)).unwrap();
    let mut reader = store.reader();
    drop(store);
    assert!(matches!(reader.changed().await, Err(StoreError::Closed)));
    let _: Option<LogId<NodeId>> = reader.current().last_applied;
}

/// Builds a snapshot of what `machine` applied.
#[allow(clippy::unwrap_used)] // A test helper: its failure is the test's.
async fn build(machine: &mut trunkline_store::StateMachineStore) -> openraft::Snapshot<TypeConfig> {
    machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

/// A folder in `dir` whose state is [`history`] and which holds a snapshot of it.
#[allow(clippy::unwrap_used)] // A test helper: its failure is the test's.
async fn snapshotted(dir: &Path, me: &Identity) -> openraft::Snapshot<TypeConfig> {
    let store = Store::open(dir, me).unwrap();
    let mut machine = store.state_machine();
    machine.apply(history()).await.unwrap();
    build(&mut machine).await
}

/// sled opened on `dir`, once the store that had it is gone: a dropped sled database lets go
/// of its lock file when its flusher thread ends, a moment later.
#[allow(clippy::unwrap_used)] // A test helper: its failure is the test's.
fn sled_once_free(dir: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(error) if std::time::Instant::now() < deadline => {
                assert!(error.to_string().contains("lock"), "{error}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("sled stays locked: {error}"),
        }
    }
}

/// The names in the folder's snapshot directory.
fn snapshot_files(root: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(root.join("snapshots"))? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// sled 0.34 keeps a large value resident for good, and a replaced one until enough later
/// activity: a snapshot's data is a file, one at a time, and what a replaced or cut-short
/// build left is removed.
#[tokio::test]
async fn the_snapshot_is_one_file_beside_the_database_and_old_ones_go() {
    let dir = tempfile::tempdir().unwrap();
    let me = identity("prod-east", 1);
    let built = {
        let store = Store::open(dir.path(), &me).unwrap();
        let mut machine = store.state_machine();
        machine.apply(history()).await.unwrap();
        build(&mut machine).await;
        let first = snapshot_files(dir.path()).unwrap();
        assert_eq!(first.len(), 1, "{first:?}");
        // What a crash between the rename and the batch, or during the write, leaves.
        fs::write(
            dir.path()
                .join("snapshots/snapshot-00000000000000000999.bin"),
            b"orphan",
        )
        .unwrap();
        fs::write(dir.path().join("snapshots/.snapshot-x.bin.tmp"), b"partial").unwrap();
        fs::write(dir.path().join("snapshots/operator-notes.txt"), b"mine").unwrap();
        let built = build(&mut machine).await;
        let second = snapshot_files(dir.path()).unwrap();
        assert_eq!(second.len(), 2, "{second:?}");
        assert!(second.contains(&"operator-notes.txt".to_owned()));
        assert!(
            !second.contains(&first[0]),
            "the replaced file stayed: {second:?}"
        );
        built
    };
    let store = Store::open(dir.path(), &me).unwrap();
    let current = store
        .state_machine()
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.meta, built.meta);
    assert_eq!(current.snapshot.into_inner(), built.snapshot.into_inner());
    assert_eq!(
        setting(&store.reader().current(), "fraud.max_cps").as_deref(),
        Some("55")
    );
}

#[tokio::test]
async fn a_damaged_or_missing_snapshot_file_is_refused_naming_it() {
    for damage in ["flip", "truncate", "delete"] {
        let dir = tempfile::tempdir().unwrap();
        let me = identity("prod-east", 1);
        snapshotted(dir.path(), &me).await;
        let file = dir
            .path()
            .join("snapshots")
            .join(&snapshot_files(dir.path()).unwrap()[0]);
        let mut bytes = fs::read(&file).unwrap();
        match damage {
            "flip" => {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x40;
                fs::write(&file, bytes).unwrap();
            }
            "truncate" => fs::write(&file, &bytes[..bytes.len() / 2]).unwrap(),
            _ => fs::remove_file(&file).unwrap(),
        }
        let refused = match Store::open(dir.path(), &me) {
            Err(error) => error.to_string(),
            Ok(store) => match store.state_machine().get_current_snapshot().await {
                Err(error) => error.to_string(),
                Ok(snapshot) => panic!(
                    "{damage}: the snapshot loaded: {:?}",
                    snapshot.map(|s| s.meta)
                ),
            },
        };
        if damage == "delete" {
            assert!(
                refused.contains(&file.display().to_string()),
                "{damage}: {refused}"
            );
        }
    }
}

/// Folders from builds that kept the snapshot's data in the database load, and their next
/// snapshot moves it out.
#[tokio::test]
async fn a_snapshot_kept_in_the_database_still_loads_and_moves_out() {
    let dir = tempfile::tempdir().unwrap();
    let me = identity("prod-east", 1);
    let built = snapshotted(dir.path(), &me).await;
    // Rewrite the folder as earlier builds left it: the data under "data", no file.
    let file = dir
        .path()
        .join("snapshots")
        .join(&snapshot_files(dir.path()).unwrap()[0]);
    {
        let db = sled_once_free(&dir.path().join("db"));
        let tree = db.open_tree("snapshot").unwrap();
        tree.insert("data", fs::read(&file).unwrap()).unwrap();
        tree.remove("file").unwrap();
        db.flush().unwrap();
    }
    fs::remove_file(&file).unwrap();

    let store = Store::open(dir.path(), &me).unwrap();
    let mut machine = store.state_machine();
    let current = machine.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, built.meta);
    assert_eq!(
        setting(&store.reader().current(), "fraud.max_cps").as_deref(),
        Some("55")
    );
    build(&mut machine).await;
    assert_eq!(snapshot_files(dir.path()).unwrap().len(), 1);
    drop(machine);
    drop(store);
    let db = sled_once_free(&dir.path().join("db"));
    let tree = db.open_tree("snapshot").unwrap();
    assert!(
        tree.get("data").unwrap().is_none(),
        "the old data stayed in the database"
    );
    assert!(tree.get("file").unwrap().is_some());
}

/// A snapshot lets purge only the log its state covers: bytes appended while it was built
/// still count towards the next one. Before, storing a snapshot started the count again
/// from zero, so a deck committed while a large snapshot was built was never compacted.
#[tokio::test]
async fn log_appended_while_a_snapshot_is_built_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &identity("prod-east", 1)).unwrap();
    let mut log_store = store.log_store();
    let mut machine = store.state_machine();
    log_store.blocking_append(history()).await.unwrap();
    machine.apply(history()).await.unwrap();
    let growth = store.log_growth();
    let before = growth.bytes_since_snapshot();
    assert!(before > 0);
    let mut builder = machine.get_snapshot_builder().await;
    let later: Vec<Entry<TypeConfig>> = (6..=9)
        .map(|index| normal(index, set(&format!("later-{index}"), "x")))
        .collect();
    log_store.blocking_append(later).await.unwrap();
    let after_append = growth.bytes_since_snapshot();
    builder.build_snapshot().await.unwrap();
    assert_eq!(growth.bytes_since_snapshot(), after_append - before);
}
