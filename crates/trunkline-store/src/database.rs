//! The sled database inside a data folder: its trees, and the one way to make writes durable.
//!
//! Trees:
//!
//! - [`TREE_LOGS`]: the Raft log, keyed by [`codec::log_key`] (big-endian index).
//! - [`TREE_RAFT_STATE`]: the small singletons of the log side: the vote, the committed log
//!   id and the last purged log id, one key each. They share a tree because each is one value.
//! - [`TREE_SNAPSHOT`]: the current snapshot (its meta and its data) and the counter that makes
//!   snapshot ids unique. Written in one batch, so meta and data never disagree.
//! - [`TREE_META`]: the identity the folder was created for, checked against the identity file,
//!   and from when the call record archive is whole.
//! - [`TREE_CDRS`]: where earlier builds kept the archive of finished call detail records;
//!   emptied into segment files at open (see [`crate::cdr_archive`]).
//!
//! sled 0.34.7 deadlocks under several concurrent `flush_async` calls, so [`Database::flush`]
//! runs the blocking `flush` on tokio's blocking pool, one at a time.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use sled::{Db, Tree};

use std::borrow::Cow;

use crate::acknowledged::{Acknowledged, AcknowledgedFile, ACKNOWLEDGED_FILE};
use crate::codec;
use crate::folder::{DataFolder, Identity, DATABASE_DIR};
use crate::seal::{KeyRing, SEALED};
use crate::StoreError;

pub(crate) const TREE_LOGS: &str = "logs";
pub(crate) const TREE_RAFT_STATE: &str = "raft_state";
pub(crate) const TREE_SNAPSHOT: &str = "snapshot";
pub(crate) const TREE_META: &str = "meta";
pub(crate) const TREE_CDRS: &str = "cdrs";

/// In [`TREE_META`]: the [`Identity`] the folder was created for.
const KEY_IDENTITY: &str = "identity";

/// sled's page cache by default (`storage.cache_bytes`). Most of what it holds is the log tail
/// replication reads; the applied state lives in memory outside it. sled's default (1 GiB) is
/// far more than a node needs, and several nodes share one machine in the cluster tests.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// The smallest cache accepted: below it sled reads the log tail from disk for every
/// replication round.
pub const MIN_CACHE_BYTES: u64 = 1024 * 1024;

/// The message sled 0.34.7 puts in the I/O error when another handle holds its lock; we take
/// our own lock first, so this only shows up if something else opened the database directly.
const SLED_LOCK_ERROR: &str = "could not acquire lock";
/// Tries again at a database whose lock is held, this often, this long apart (a second in
/// all) before the folder counts as in use by another process.
const LOCK_RETRIES: usize = 20;
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// How far a [`Database::reseal`] has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResealProgress {
    /// Values in the database when it started.
    pub total: u64,
    pub examined: u64,
    /// Values sealed again with the current key.
    pub resealed: u64,
}

/// Values examined between two progress reports of a reseal.
pub const RESEAL_PROGRESS_EVERY: u64 = 1_000;

pub(crate) struct Database {
    /// The data folder, for error messages.
    pub(crate) path: PathBuf,
    pub(crate) logs: Tree,
    pub(crate) raft_state: Tree,
    pub(crate) snapshot: Tree,
    pub(crate) meta: Tree,
    /// The archive's home in earlier builds: emptied into segment files at open.
    pub(crate) cdrs: Tree,
    db: Db,
    /// What this node acknowledged, kept outside sled (see [`crate::acknowledged`]). Updated
    /// after sled's flush and before the acknowledgement; a blocking write, one at a time.
    acknowledged: Mutex<AcknowledgedFile>,
    /// Bytes of log entries appended since the last snapshot was stored: sled holds what the
    /// log holds in memory, so the node snapshots (and purges) by size too, not only by count.
    pub(crate) log_bytes_since_snapshot: Arc<AtomicU64>,
    /// What `/metrics` shows of the store.
    pub(crate) metrics: Arc<crate::StoreMetrics>,
    /// Serialises flushes: concurrent flushes are where sled 0.34.7 has deadlocked.
    flush_lock: tokio::sync::Mutex<()>,
    /// With keys, every value written to sled is sealed (see [`crate::seal`]).
    pub(crate) keys: Option<Arc<KeyRing>>,
    /// Declared last so it is dropped last: the folder lock outlives every sled handle.
    _folder: DataFolder,
}

impl Database {
    /// Opens the database of a claimed folder and checks (or, on first open, records) the
    /// identity inside it. Blocks the calling thread on disk I/O.
    pub(crate) fn open(
        folder: DataFolder,
        identity: &Identity,
        keys: Option<Arc<KeyRing>>,
        cache_bytes: u64,
    ) -> Result<Database, StoreError> {
        let path = folder.path.clone();
        let keys_error = |detail: String| StoreError::Keys {
            path: path.clone(),
            detail,
        };
        let acknowledged = AcknowledgedFile::open(&path)?.ok_or_else(|| StoreError::Corrupt {
            path: path.clone(),
            detail: format!(
                "{ACKNOWLEDGED_FILE} (the record of what this node acknowledged) is missing, so \
                 the node can't tell whether its database lost acknowledged writes"
            ),
        })?;
        remove_partial_snapshots(&path.join(DATABASE_DIR))?;
        let database_error = |source: sled::Error| match source {
            sled::Error::Io(ref error) if error.to_string().contains(SLED_LOCK_ERROR) => {
                StoreError::InUse { path: path.clone() }
            }
            source => StoreError::Database {
                path: path.clone(),
                source,
            },
        };
        let config = sled::Config::new()
            .path(path.join(DATABASE_DIR))
            .cache_capacity(cache_bytes.max(MIN_CACHE_BYTES));
        // sled 0.34 panics on some damaged files (a database file cut in half) instead of
        // returning an error; that is a damaged folder, not a crash of this process.
        let open = || {
            let config = config.clone();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
                .map_err(|panic| StoreError::Corrupt {
                    path: path.clone(),
                    detail: format!(
                        "the database in {DATABASE_DIR}/ can't be opened (sled failed: {})",
                        panic_message(&panic)
                    ),
                })?
                .map_err(database_error)
        };
        // A database this process just closed may hold its lock a moment longer (sled's
        // background writes finish on their own threads): a short wait, not a refusal.
        let mut db = open();
        for _ in 0..LOCK_RETRIES {
            if !matches!(db, Err(StoreError::InUse { .. })) {
                break;
            }
            std::thread::sleep(LOCK_RETRY_PAUSE);
            db = open();
        }
        let db = db?;
        let open_tree = |name: &str| db.open_tree(name).map_err(database_error);
        let logs = open_tree(TREE_LOGS)?;
        let raft_state = open_tree(TREE_RAFT_STATE)?;
        let snapshot = open_tree(TREE_SNAPSHOT)?;
        let meta = open_tree(TREE_META)?;
        let cdrs = open_tree(TREE_CDRS)?;

        match meta.get(KEY_IDENTITY).map_err(database_error)? {
            Some(bytes) => {
                // The identity is the first value read: it tells whether the folder is
                // encrypted and whether the keys given open it.
                let plain = match (bytes.first() == Some(&SEALED), &keys) {
                    (true, Some(keys)) => keys.open(&bytes).map_err(|reason| {
                        keys_error(format!(
                            "can't decrypt it with the keys given: {reason}; give the key file \
                             the folder was written with (--encryption-key-file)"
                        ))
                    })?,
                    (true, None) => {
                        return Err(keys_error(
                            "it is encrypted and no key was given: start the node with its \
                             key file (--encryption-key-file or TRUNKLINE_ENCRYPTION_KEYS)"
                                .to_owned(),
                        ))
                    }
                    (false, Some(_)) => {
                        return Err(keys_error(
                            "it was made without encryption, and keys were given: start the \
                             node without keys, or give it an empty folder (it then catches up \
                             from the leader, encrypted)"
                                .to_owned(),
                        ))
                    }
                    (false, None) => bytes.to_vec(),
                };
                let recorded: Identity =
                    codec::decode(&plain).map_err(|error| StoreError::Corrupt {
                        path: path.clone(),
                        detail: format!("the identity in the database is unreadable ({error})"),
                    })?;
                if recorded != *identity {
                    return Err(StoreError::Corrupt {
                        path: path.clone(),
                        detail: format!(
                            "the identity file says {identity} but the database was created \
                             for {recorded}"
                        ),
                    });
                }
            }
            None => {
                let value =
                    seal_with(keys.as_deref(), codec::encode(identity)?).map_err(keys_error)?;
                meta.insert(KEY_IDENTITY, value).map_err(database_error)?;
                db.flush().map_err(database_error)?;
            }
        }

        Ok(Database {
            path,
            logs,
            raft_state,
            snapshot,
            meta,
            cdrs,
            db,
            acknowledged: Mutex::new(acknowledged),
            log_bytes_since_snapshot: Arc::new(AtomicU64::new(0)),
            metrics: Arc::default(),
            flush_lock: tokio::sync::Mutex::new(()),
            keys,
            _folder: folder,
        })
    }

    /// Seals again with the current key every value sealed with another, tree by tree,
    /// reporting to `progress` every [`RESEAL_PROGRESS_EVERY`] values. A value changed since
    /// it was read is left as it is now (it was written with the current key). Blocking.
    pub(crate) fn reseal(
        &self,
        mut progress: impl FnMut(ResealProgress),
    ) -> Result<ResealProgress, StoreError> {
        let Some(keys) = &self.keys else {
            return Err(StoreError::Keys {
                path: self.path.clone(),
                detail: "the node has no encryption keys: nothing to re-seal".to_owned(),
            });
        };
        let database_error = |source: sled::Error| StoreError::Database {
            path: self.path.clone(),
            source,
        };
        let keys_error = |detail: String| StoreError::Keys {
            path: self.path.clone(),
            detail,
        };
        let trees = [
            TREE_META,
            TREE_RAFT_STATE,
            TREE_SNAPSHOT,
            TREE_LOGS,
            TREE_CDRS,
        ]
        .map(|name| self.db.open_tree(name).map_err(database_error));
        let mut report = ResealProgress::default();
        let mut opened = Vec::new();
        for tree in trees {
            let tree = tree?;
            report.total += tree.len() as u64;
            opened.push(tree);
        }
        progress(report);
        for tree in opened {
            for item in tree.iter() {
                let (key, value) = item.map_err(database_error)?;
                report.examined += 1;
                if let Some(sealed) = resealed(keys, &value).map_err(keys_error)? {
                    // Written meanwhile (under the current key): leave it.
                    if tree
                        .compare_and_swap(&key, Some(&value), Some(sealed))
                        .map_err(database_error)?
                        .is_ok()
                    {
                        report.resealed += 1;
                    }
                }
                if report.examined % RESEAL_PROGRESS_EVERY == 0 {
                    progress(report);
                }
            }
        }
        self.db.flush().map_err(database_error)?;
        Ok(report)
    }

    /// `value` sealed again with the current key, when the node has keys and another key
    /// sealed it; `None` when it needs nothing.
    pub(crate) fn resealed(&self, value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
        resealed(keys, value).map_err(|detail| StoreError::Keys {
            path: self.path.clone(),
            detail,
        })
    }

    pub(crate) fn key_id(&self) -> Option<u32> {
        self.keys.as_ref().map(|keys| keys.current_id())
    }

    /// A value as it is written to sled: sealed when the node has keys.
    pub(crate) fn seal(&self, value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        seal_with(self.keys.as_deref(), value).map_err(|detail| StoreError::Keys {
            path: self.path.clone(),
            detail,
        })
    }

    /// A value read from sled, opened: every value of an encrypted folder must be sealed
    /// and open with its key; a plain folder's values are used as they are.
    pub(crate) fn unseal<'a>(&self, value: &'a [u8]) -> Result<Cow<'a, [u8]>, StoreError> {
        let keys_error = |detail: String| StoreError::Keys {
            path: self.path.clone(),
            detail,
        };
        match (&self.keys, value.first() == Some(&SEALED)) {
            (Some(keys), true) => keys.open(value).map(Cow::Owned).map_err(keys_error),
            (Some(_), false) => Err(keys_error(
                "a value is not encrypted although the folder is".to_owned(),
            )),
            (None, true) => Err(keys_error(
                "a value is encrypted and no key was given".to_owned(),
            )),
            (None, false) => Ok(Cow::Borrowed(value)),
        }
    }

    /// Decodes a value read from sled.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        value: &[u8],
    ) -> Result<T, StoreError> {
        codec::decode(&self.unseal(value)?)
    }

    /// Encodes a value for sled.
    pub(crate) fn encode<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<Vec<u8>, StoreError> {
        self.seal(codec::encode(value)?)
    }

    /// What the record outside sled says this node acknowledged.
    pub(crate) fn acknowledged(&self) -> Acknowledged {
        match self.acknowledged.lock() {
            Ok(file) => file.record().clone(),
            Err(poisoned) => poisoned.into_inner().record().clone(),
        }
    }

    /// Changes the acknowledged record with `change` and writes it durably (on a blocking
    /// thread). Call it only after sled has flushed what the change claims.
    pub(crate) async fn acknowledge(
        self: &Arc<Self>,
        change: impl FnOnce(&mut Acknowledged) + Send + 'static,
    ) -> Result<(), StoreError> {
        let database = Arc::clone(self);
        let written =
            tokio::task::spawn_blocking(move || database.acknowledge_blocking(change)).await;
        match written {
            Ok(result) => result,
            Err(join_error) => Err(StoreError::Io {
                action: "write",
                path: self.path.join(ACKNOWLEDGED_FILE),
                source: io::Error::other(format!("the write did not finish: {join_error}")),
            }),
        }
    }

    /// [`Database::flush`], then [`Database::acknowledge`] with `change`, in one trip to
    /// tokio's blocking pool: an append does both, and each trip is a thread woken and
    /// switched to and back on every member, for every entry.
    pub(crate) async fn flush_and_acknowledge(
        self: &Arc<Self>,
        change: impl FnOnce(&mut Acknowledged) + Send + 'static,
    ) -> Result<(), String> {
        let _one_at_a_time = self.flush_lock.lock().await;
        let database = Arc::clone(self);
        let done = tokio::task::spawn_blocking(move || {
            database.db.flush().map_err(|error| error.to_string())?;
            database
                .acknowledge_blocking(change)
                .map_err(|error| error.to_string())
        })
        .await;
        match done {
            Ok(result) => result,
            Err(join_error) => Err(format!("the flush task did not finish: {join_error}")),
        }
    }

    /// The record changed by `change`, written and synced when that changed it. Blocking.
    fn acknowledge_blocking(
        &self,
        change: impl FnOnce(&mut Acknowledged),
    ) -> Result<(), StoreError> {
        // A panic while holding the lock can only come from a bug in `change`; the record in
        // the file is still whole, so carry on with it.
        let mut file = match self.acknowledged.lock() {
            Ok(file) => file,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut record = file.record().clone();
        change(&mut record);
        if &record == file.record() {
            return Ok(());
        }
        file.write(record)
    }

    /// Makes every write made so far durable, blocking the calling thread: for open, before
    /// anything else uses the database.
    pub(crate) fn flush_blocking(&self) -> Result<(), sled::Error> {
        self.db.flush().map(|_flushed_bytes| ())
    }

    /// Makes every write made so far durable. Runs sled's blocking flush on tokio's blocking
    /// pool, never two at once.
    pub(crate) async fn flush(&self) -> Result<(), sled::Error> {
        let _one_at_a_time = self.flush_lock.lock().await;
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(result) => result.map(|_flushed_bytes| ()),
            Err(join_error) => Err(sled::Error::Io(io::Error::other(format!(
                "the flush task did not finish: {join_error}"
            )))),
        }
    }
}

/// `value` sealed again with the newest of `keys`, when an older one sealed it.
fn resealed(keys: &KeyRing, value: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if crate::seal::key_id_of(value).is_none_or(|id| id == keys.current_id()) {
        return Ok(None);
    }
    keys.seal(&keys.open(value)?).map(Some)
}

/// Removes the partial snapshot files (`snap.*.generating`) a failed sled start leaves
/// behind: sled writes its snapshot under that name and renames it when complete, so such a
/// file is never the only copy of anything, but sled 0.34 refuses to start while one exists
/// ("Read corrupted data at file offset None").
fn remove_partial_snapshots(database_dir: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(database_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                action: "list",
                path: database_dir.to_owned(),
                source,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| StoreError::Io {
            action: "list",
            path: database_dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            tracing::warn!(path = %path.display(), "removing a partial sled snapshot left by a failed start");
            std::fs::remove_file(&path).map_err(|source| StoreError::Io {
                action: "remove",
                path,
                source,
            })?;
        }
    }
    Ok(())
}

/// The text of a caught panic.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

fn seal_with(keys: Option<&KeyRing>, value: Vec<u8>) -> Result<Vec<u8>, String> {
    match keys {
        Some(keys) => keys.seal(&value),
        None => Ok(value),
    }
}
