//! Durability across a crash: what the store acknowledged is on disk even when the process is
//! killed with SIGKILL, with no clean shutdown and no destructor run.
//!
//! The test runs its own binary again as a child process (selected by
//! [`CHILD_FOLDER_VARIABLE`]), which writes, says so on stdout, and waits to be killed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, RaftLogReader, RaftSnapshotBuilder, Vote};
use trunkline_core::settings::SettingsCommand;
use trunkline_core::{Command as CoreCommand, Request};
use trunkline_store::{Identity, Store, TypeConfig};

/// Set in the child's environment to the data folder it writes to.
const CHILD_FOLDER_VARIABLE: &str = "TRUNKLINE_STORE_CRASH_CHILD_FOLDER";
/// What the child prints once every write it made was acknowledged.
const ACKNOWLEDGED: &str = "trunkline-store-crash-child: acknowledged";
/// How long the parent waits for the child's acknowledgement.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// How many entries the child appends.
const ENTRIES: u64 = 20;

fn identity() -> Identity {
    Identity {
        cluster_name: "crash".to_owned(),
        node_id: 1,
    }
}

fn entries() -> Vec<Entry<TypeConfig>> {
    (1..=ENTRIES)
        .map(|index| Entry {
            log_id: log_id(1, 1, index),
            payload: EntryPayload::Normal(Request {
                idempotency: None,
                time_ms: index,
                actor: None,
                command: CoreCommand::Settings(SettingsCommand::Set {
                    key: format!("key-{index}"),
                    value: format!("value-{index}"),
                }),
            }),
        })
        .collect()
}

/// The child's work: append, vote, commit, apply and snapshot half, then wait to be killed.
/// Without [`CHILD_FOLDER_VARIABLE`] (a normal test run) it does nothing.
#[test]
fn crash_child_writes_then_waits_to_be_killed() {
    let Some(folder) = std::env::var_os(CHILD_FOLDER_VARIABLE) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(Path::new(&folder), &identity()).unwrap();
        let mut log_store = store.log_store();
        let mut machine = store.state_machine();
        let entries = entries();
        for entry in &entries {
            log_store.blocking_append([entry.clone()]).await.unwrap();
        }
        log_store
            .save_vote(&Vote::new_committed(1, 1))
            .await
            .unwrap();
        log_store
            .save_committed(Some(log_id(1, 1, ENTRIES)))
            .await
            .unwrap();
        machine
            .apply(entries[..ENTRIES as usize / 2].to_vec())
            .await
            .unwrap();
        machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        println!("{ACKNOWLEDGED}");
        std::future::pending::<()>().await;
    });
}

#[test]
fn acknowledged_writes_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writes_then_waits_to_be_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_FOLDER_VARIABLE, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.contains(ACKNOWLEDGED) {
                let _ = sender.send(());
                return;
            }
        }
    });
    let acknowledged = receiver.recv_timeout(CHILD_TIMEOUT);
    child.kill().unwrap(); // SIGKILL: no destructor, no final flush.
    child.wait().unwrap();
    acknowledged.expect("the child never acknowledged its writes");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(dir.path(), &identity()).unwrap();
        let mut log_store = store.log_store();
        let mut machine = store.state_machine();
        let read_back = log_store.try_get_log_entries(..).await.unwrap();
        assert_eq!(read_back.len() as u64, ENTRIES);
        assert_eq!(
            format!(
                "{:?}",
                read_back.iter().map(|e| &e.payload).collect::<Vec<_>>()
            ),
            format!(
                "{:?}",
                entries().iter().map(|e| &e.payload).collect::<Vec<_>>()
            )
        );
        assert_eq!(
            log_store.read_vote().await.unwrap(),
            Some(Vote::new_committed(1, 1))
        );
        // Saved without a flush of its own, but before the snapshot's flush: sled writes in
        // order, so it is durable too.
        assert_eq!(
            log_store.read_committed().await.unwrap(),
            Some(log_id(1, 1, ENTRIES))
        );
        let snapshot = machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, ENTRIES / 2)));
        assert_eq!(
            store.reader().current().last_applied,
            Some(log_id(1, 1, ENTRIES / 2))
        );
    });
}
