//! The sled database inside a data folder: its trees, and the one way to make writes durable.
//!
//! Trees:
//!
//! - [`TREE_LOGS`]: the Raft log, keyed by [`codec::log_key`] (big-endian index).
//! - [`TREE_RAFT_STATE`]: the small singletons of the log side: the vote, the committed log
//!   id and the last purged log id, one key each. They share a tree because each is one value.
//! - [`TREE_SNAPSHOT`]: the current snapshot (its meta and its data) and the counter that makes
//!   snapshot ids unique. Written in one batch, so meta and data never disagree.
//! - [`TREE_META`]: the identity the folder was created for, checked against the identity file.
//!
//! sled 0.34.7 deadlocks under several concurrent `flush_async` calls, so [`Database::flush`]
//! runs the blocking `flush` on tokio's blocking pool, one at a time.

use std::io;
use std::path::PathBuf;

use sled::{Db, Tree};

use crate::codec;
use crate::folder::{DataFolder, Identity, DATABASE_DIR};
use crate::StoreError;

pub(crate) const TREE_LOGS: &str = "logs";
pub(crate) const TREE_RAFT_STATE: &str = "raft_state";
pub(crate) const TREE_SNAPSHOT: &str = "snapshot";
pub(crate) const TREE_META: &str = "meta";

/// In [`TREE_META`]: the [`Identity`] the folder was created for.
const KEY_IDENTITY: &str = "identity";

/// sled's page cache. Most of what it holds is the log tail replication reads; the applied
/// state lives in memory outside it. sled's default (1 GiB) is far more than a node needs, and
/// several nodes share one machine in the cluster tests.
const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// The message sled 0.34.7 puts in the I/O error when another handle holds its lock; we take
/// our own lock first, so this only shows up if something else opened the database directly.
const SLED_LOCK_ERROR: &str = "could not acquire lock";

pub(crate) struct Database {
    /// The data folder, for error messages.
    pub(crate) path: PathBuf,
    pub(crate) logs: Tree,
    pub(crate) raft_state: Tree,
    pub(crate) snapshot: Tree,
    db: Db,
    /// Serialises flushes: concurrent flushes are where sled 0.34.7 has deadlocked.
    flush_lock: tokio::sync::Mutex<()>,
    /// Declared last so it is dropped last: the folder lock outlives every sled handle.
    _folder: DataFolder,
}

impl Database {
    /// Opens the database of a claimed folder and checks (or, on first open, records) the
    /// identity inside it. Blocks the calling thread on disk I/O.
    pub(crate) fn open(folder: DataFolder, identity: &Identity) -> Result<Database, StoreError> {
        let path = folder.path.clone();
        let database_error = |source: sled::Error| match source {
            sled::Error::Io(ref error) if error.to_string().contains(SLED_LOCK_ERROR) => {
                StoreError::InUse { path: path.clone() }
            }
            source => StoreError::Database {
                path: path.clone(),
                source,
            },
        };
        let db = sled::Config::new()
            .path(path.join(DATABASE_DIR))
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .open()
            .map_err(database_error)?;
        let open_tree = |name: &str| db.open_tree(name).map_err(database_error);
        let logs = open_tree(TREE_LOGS)?;
        let raft_state = open_tree(TREE_RAFT_STATE)?;
        let snapshot = open_tree(TREE_SNAPSHOT)?;
        let meta = open_tree(TREE_META)?;

        match meta.get(KEY_IDENTITY).map_err(database_error)? {
            Some(bytes) => {
                let recorded: Identity =
                    codec::decode(&bytes).map_err(|error| StoreError::Corrupt {
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
                meta.insert(KEY_IDENTITY, codec::encode(identity)?)
                    .map_err(database_error)?;
                db.flush().map_err(database_error)?;
            }
        }

        Ok(Database {
            path,
            logs,
            raft_state,
            snapshot,
            db,
            flush_lock: tokio::sync::Mutex::new(()),
            _folder: folder,
        })
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
