//! Fault injection: a damaged data folder is refused, never served as older data.
//!
//! One folder is written the way a node writes it (a log with large and small entries, votes,
//! a snapshot, a purged prefix, a committed id) and closed cleanly. Each trial copies it,
//! damages the copy (random byte flips, a file truncated to a random length, a file deleted,
//! and the specific cases seen in the field), then opens it and reads everything back. A trial
//! ends one of three ways:
//!
//! - refused: `Store::open` fails with a message naming the folder, or a read fails (at run
//!   time a failed read stops the node);
//! - intact: the damage hit nothing in use, and everything reads back exactly as written;
//! - silently rolled back: the store opened and served something other than what was
//!   acknowledged. This must never happen.
//!
//! `TRUNKLINE_DAMAGE_TRIALS` sets the number of random trials per kind (50 by default).

// Test helpers: a failure to set up the fixture should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder, Vote};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trunkline_core::settings::SettingsCommand;
use trunkline_core::{Command, Request};
use trunkline_store::{Identity, Node, NodeId, Store, StoreError, TypeConfig};

/// Entries in the golden log.
const ENTRIES: u64 = 600;
/// Entries applied and covered by the snapshot.
const SNAPSHOT_AT: u64 = 150;
/// The log is purged up to here (below the snapshot, as openraft does).
const PURGED_AT: u64 = 100;
/// Every this many entries one is large, so sled stores it as a blob file.
const LARGE_EVERY: u64 = 25;
/// Bytes of a large entry's value.
const LARGE_VALUE_BYTES: usize = 200 * 1024;
/// The vote the node last saved.
const TERM: u64 = 3;

fn identity() -> Identity {
    Identity {
        cluster_name: "damage".to_owned(),
        node_id: 1,
    }
}

fn entry(index: u64) -> Entry<TypeConfig> {
    if index == 0 {
        let nodes = BTreeMap::from([(
            1,
            Node {
                peer_addr: "127.0.0.1:7001".to_owned(),
                api_addr: "127.0.0.1:7000".to_owned(),
            },
        )]);
        return Entry {
            log_id: log_id(1, 1, 0),
            payload: EntryPayload::Membership(Membership::new(vec![[1].into()], nodes)),
        };
    }
    let value = if index.is_multiple_of(LARGE_EVERY) {
        format!("{index}:").repeat(LARGE_VALUE_BYTES / 5)
    } else {
        format!("value-{index}")
    };
    Entry {
        log_id: log_id(1 + index / 100, 1, index),
        payload: EntryPayload::Normal(Request {
            idempotency: None,
            time_ms: 1_700_000_000_000 + index,
            actor: None,
            command: Command::Settings(SettingsCommand::Set {
                key: format!("key-{}", index % 50),
                value,
            }),
        }),
    }
}

/// Everything the golden folder acknowledged, as the store reports it.
#[derive(Debug, PartialEq)]
struct Contents {
    vote: Option<Vote<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    last_log_id: Option<LogId<NodeId>>,
    /// Entries after the purged prefix, printed (entries have no `PartialEq`).
    entries: Vec<String>,
    snapshot: Option<(String, Vec<u8>)>,
}

/// Writes the golden folder; after each flushed append, copies its database into
/// `earlier/N`: what the database looked like before its later writes, which is what sled
/// serves when it loses recent writes.
async fn write_golden(folder: &Path, earlier: &Path) {
    let store = Store::open(folder, &identity()).unwrap();
    let mut log_store = store.log_store();
    let mut machine = store.state_machine();
    log_store.save_vote(&Vote::new(1, 1)).await.unwrap();
    for start in (0..ENTRIES).step_by(16) {
        let batch: Vec<_> = (start..(start + 16).min(ENTRIES)).map(entry).collect();
        log_store.blocking_append(batch).await.unwrap();
        copy_folder(&folder.join("db"), &earlier.join(format!("{start}")));
    }
    log_store
        .save_vote(&Vote::new_committed(TERM, 1))
        .await
        .unwrap();
    log_store
        .save_committed(Some(entry(ENTRIES - 1).log_id))
        .await
        .unwrap();
    machine
        .apply((0..=SNAPSHOT_AT).map(entry).collect::<Vec<_>>())
        .await
        .unwrap();
    machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    log_store.purge(entry(PURGED_AT).log_id).await.unwrap();
}

/// Opens the folder and reads everything; `Err` is the refusal (at open or at a read).
async fn read_all(folder: &Path) -> Result<Contents, String> {
    let store = Store::open(folder, &identity()).map_err(|error| error.to_string())?;
    let mut log_store = store.log_store();
    let mut machine = store.state_machine();
    let vote = log_store.read_vote().await.map_err(|e| e.to_string())?;
    let state = log_store.get_log_state().await.map_err(|e| e.to_string())?;
    let start = state
        .last_purged_log_id
        .map_or(0, |purged| purged.index + 1);
    let entries = log_store
        .try_get_log_entries(start..)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|entry| format!("{entry:?}"))
        .collect();
    let snapshot = machine
        .get_current_snapshot()
        .await
        .map_err(|e| e.to_string())?
        .map(|snapshot| {
            (
                format!("{:?}", snapshot.meta),
                snapshot.snapshot.into_inner(),
            )
        });
    Ok(Contents {
        vote,
        last_purged: state.last_purged_log_id,
        last_log_id: state.last_log_id,
        entries,
        snapshot,
    })
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if !path.ends_with("trunkline.lock") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn copy_folder(from: &Path, to: &Path) {
    for file in files_under(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(&file, &target).unwrap();
    }
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    Flip,
    Truncate,
    Delete,
    /// The database replaced by an earlier copy of itself: sled losing recent writes.
    LoseRecentWrites,
}

/// Damages one random file of the copy; says what was done.
fn damage(folder: &Path, earlier: &Path, kind: Damage, random: &mut SmallRng) -> String {
    if let Damage::LoseRecentWrites = kind {
        let copies: Vec<PathBuf> = fs::read_dir(earlier)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        let copy = &copies[random.random_range(0..copies.len())];
        fs::remove_dir_all(folder.join("db")).unwrap();
        copy_folder(copy, &folder.join("db"));
        return format!("database replaced by its copy {}", copy.display());
    }
    let files: Vec<PathBuf> = files_under(folder)
        .into_iter()
        .filter(|file| fs::metadata(file).unwrap().len() > 0 || matches!(kind, Damage::Delete))
        .collect();
    let file = &files[random.random_range(0..files.len())];
    let name = file.strip_prefix(folder).unwrap().display().to_string();
    match kind {
        Damage::Flip => {
            let mut bytes = fs::read(file).unwrap();
            let offset = random.random_range(0..bytes.len());
            for byte in bytes.iter_mut().skip(offset).take(8) {
                *byte ^= random.random_range(1..=255u8);
            }
            fs::write(file, bytes).unwrap();
            format!("flipped 8 bytes of {name} at {offset}")
        }
        Damage::Truncate => {
            let length = fs::metadata(file).unwrap().len();
            let new_length = random.random_range(0..length);
            fs::OpenOptions::new()
                .write(true)
                .open(file)
                .unwrap()
                .set_len(new_length)
                .unwrap();
            format!("truncated {name} from {length} to {new_length} bytes")
        }
        Damage::Delete => {
            fs::remove_file(file).unwrap();
            format!("deleted {name}")
        }
        Damage::LoseRecentWrites => unreachable!("handled above"),
    }
}

#[derive(Default, Debug)]
struct Tally {
    trials: u32,
    refused: u32,
    intact: u32,
    rolled_back: Vec<String>,
}

impl Tally {
    async fn judge(&mut self, folder: &Path, what: String, golden: &Contents) {
        self.trials += 1;
        let outcome = read_all(folder).await;
        match outcome {
            Err(message) => {
                self.refused += 1;
                let refusal_names_the_folder = message.contains(&folder.display().to_string())
                    || !message.contains("data folder");
                assert!(
                    refusal_names_the_folder,
                    "{what}: the refusal does not name the folder: {message}"
                );
            }
            Ok(contents) if contents == *golden => self.intact += 1,
            Ok(contents) => self.rolled_back.push(format!(
                "{what}: opened with vote {:?}, log to {:?} ({} entries), snapshot {:?}",
                contents.vote,
                contents.last_log_id,
                contents.entries.len(),
                contents.snapshot.as_ref().map(|(meta, _)| meta)
            )),
        }
    }
}

fn trials_per_kind() -> u32 {
    std::env::var("TRUNKLINE_DAMAGE_TRIALS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(50)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_folders_are_refused_never_rolled_back() {
    let work = tempfile::tempdir().unwrap();
    let golden_folder = work.path().join("golden");
    let earlier = work.path().join("earlier");
    write_golden(&golden_folder, &earlier).await;
    let golden = read_all(&golden_folder).await.unwrap();
    assert_eq!(golden.entries.len() as u64, ENTRIES - PURGED_AT - 1);
    assert_eq!(golden.vote, Some(Vote::new_committed(TERM, 1)));
    let blobs = files_under(&golden_folder)
        .iter()
        .filter(|file| file.to_string_lossy().contains("blobs"))
        .count();
    assert!(blobs > 0, "the golden folder should have sled blob files");

    let mut random = SmallRng::seed_from_u64(0x7275_6e6b);
    let mut report = Vec::new();
    let mut rolled_back = Vec::new();
    for kind in [
        Damage::Flip,
        Damage::Truncate,
        Damage::Delete,
        Damage::LoseRecentWrites,
    ] {
        let mut tally = Tally::default();
        for trial in 0..trials_per_kind() {
            let folder = work.path().join(format!("{kind:?}-{trial}"));
            copy_folder(&golden_folder, &folder);
            let what = damage(&folder, &earlier, kind, &mut random);
            tally.judge(&folder, what, &golden).await;
            fs::remove_dir_all(&folder).unwrap();
        }
        report.push(format!(
            "{kind:?}: {} trials, {} refused, {} intact, {} silently rolled back",
            tally.trials,
            tally.refused,
            tally.intact,
            tally.rolled_back.len()
        ));
        rolled_back.extend(tally.rolled_back);
    }

    // The cases seen in the field, each on its own copy.
    let mut field = Tally::default();
    type Case = (&'static str, fn(&Path));
    let cases: [Case; 4] = [
        ("truncate -s -100 db/db", |folder| {
            let file = folder.join("db/db");
            let length = fs::metadata(&file).unwrap().len();
            let handle = fs::OpenOptions::new().write(true).open(&file).unwrap();
            handle.set_len(length - 100).unwrap();
        }),
        ("db/db cut in half", |folder| {
            let file = folder.join("db/db");
            let length = fs::metadata(&file).unwrap().len();
            let handle = fs::OpenOptions::new().write(true).open(&file).unwrap();
            handle.set_len(length / 2).unwrap();
        }),
        ("the newest blob deleted", |folder| {
            fs::remove_file(newest_blob(folder)).unwrap();
        }),
        ("the newest blob truncated", |folder| {
            let handle = fs::OpenOptions::new()
                .write(true)
                .open(newest_blob(folder))
                .unwrap();
            handle.set_len(10).unwrap();
        }),
    ];
    for (name, apply) in cases {
        let folder = work.path().join(name.replace(['/', ' '], "_"));
        copy_folder(&golden_folder, &folder);
        apply(&folder);
        field.judge(&folder, name.to_owned(), &golden).await;
    }
    report.push(format!(
        "field cases: {} trials, {} refused, {} intact, {} silently rolled back",
        field.trials,
        field.refused,
        field.intact,
        field.rolled_back.len()
    ));
    rolled_back.extend(field.rolled_back);

    println!("{}", report.join("\n"));
    assert!(
        rolled_back.is_empty(),
        "silent rollbacks:\n{}",
        rolled_back.join("\n")
    );
}

fn newest_blob(folder: &Path) -> PathBuf {
    files_under(&folder.join("db/blobs"))
        .into_iter()
        .max_by_key(|file| {
            file.file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .unwrap()
}

/// The record outside sled is what catches a rollback sled itself does not notice: a folder
/// whose database lost its last writes (here: an older copy of the database with the newer
/// record) is refused, naming what was acknowledged.
#[tokio::test]
async fn a_database_older_than_the_acknowledged_record_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("node");
    let older = work.path().join("older-db");
    {
        let store = Store::open(&folder, &identity()).unwrap();
        let mut log_store = store.log_store();
        log_store.save_vote(&Vote::new(1, 1)).await.unwrap();
        log_store
            .blocking_append((0..10).map(entry).collect::<Vec<_>>())
            .await
            .unwrap();
    }
    copy_folder(&folder.join("db"), &older);
    {
        let store = Store::open(&folder, &identity()).unwrap();
        let mut log_store = store.log_store();
        log_store
            .blocking_append((10..20).map(entry).collect::<Vec<_>>())
            .await
            .unwrap();
        log_store
            .save_vote(&Vote::new_committed(2, 1))
            .await
            .unwrap();
    }
    fs::remove_dir_all(folder.join("db")).unwrap();
    copy_folder(&older, &folder.join("db"));

    let error = Store::open(&folder, &identity()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("trunkline recover"), "{message}");
    assert!(message.contains(&folder.display().to_string()), "{message}");
    assert!(message.contains("vote"), "{message}");
}
