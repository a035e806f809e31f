//! Opening a node's data folder, and handing out the two halves openraft takes ownership of.

use std::path::Path;
use std::sync::Arc;

use crate::cdr_archive::CdrArchive;
use crate::database::Database;
use crate::folder::{self, Identity};
use crate::snapshot_store::SnapshotStore;
use crate::verify;
use crate::{LogStore, StateMachineStore, StateReader, StoreError};

/// A node's open data folder. Holds the folder's lock for as long as it, or any handle it
/// gave out, is alive.
#[derive(Clone, Debug)]
pub struct Store {
    log_store: LogStore,
    state_machine: StateMachineStore,
    log_growth: LogGrowth,
    resealer: Resealer,
}

/// Seals again, with the newest key, what older keys sealed (`trunkctl keys rotate`).
#[derive(Clone)]
pub struct Resealer(Arc<Database>, CdrArchive);

impl std::fmt::Debug for Resealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resealer")
            .field("path", &self.0.path)
            .finish()
    }
}

impl Resealer {
    /// The node's keys, which seal its backups as they seal its folder; `None` without keys.
    pub fn keys(&self) -> Option<Arc<crate::seal::KeyRing>> {
        self.0.keys.clone()
    }

    /// The key new values are sealed with; `None` without keys.
    pub fn key_id(&self) -> Option<u32> {
        self.0.key_id()
    }

    /// Blocking: run it on a blocking thread. See [`Database::reseal`], then
    /// [`CdrArchive::reseal`] for the call record archive.
    pub fn reseal(
        &self,
        mut progress: impl FnMut(crate::database::ResealProgress),
    ) -> Result<crate::database::ResealProgress, StoreError> {
        let mut report = self.0.reseal(&mut progress)?;
        report.total += 1;
        report.examined += 1;
        let rewritten = SnapshotStore::new(Arc::clone(&self.0)).reseal_file()?;
        if rewritten {
            report.resealed += 1;
        }
        progress(report);
        self.1.reseal(&mut report, &mut progress)?;
        Ok(report)
    }
}

/// How many bytes of log entries were appended since the last snapshot was stored. sled 0.34
/// keeps the values of the log it holds in memory, so a node must snapshot (and so purge) by
/// size, not only by entry count: 10,000 rate-deck chunks are 2.5 GB.
#[derive(Clone, Debug)]
pub struct LogGrowth(Arc<std::sync::atomic::AtomicU64>);

impl LogGrowth {
    pub fn bytes_since_snapshot(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Store {
    /// Opens the data folder at `data_dir`, creating it on first use for `identity`.
    ///
    /// Refuses a damaged folder ([`StoreError::Corrupt`]): a value that fails its checksum, a
    /// log with a hole, or less than the node acknowledged (see [`crate::verify`]).
    /// Refuses, without writing anything: an invalid identity, a folder created for another
    /// cluster or node id ([`StoreError::IdentityMismatch`]), and a folder that is not a
    /// Trunkline data folder. A folder another process has open gives [`StoreError::InUse`].
    /// Blocks the calling thread on disk I/O; call it before serving, or on a blocking thread.
    pub fn open(data_dir: &Path, identity: &Identity) -> Result<Store, StoreError> {
        Store::open_with_keys(data_dir, identity, None)
    }

    /// [`Store::open`], sealing every value written to sled with `keys` (and opening every
    /// value read with them); the folder must have been made with keys too, or be new.
    pub fn open_with_keys(
        data_dir: &Path,
        identity: &Identity,
        keys: Option<Arc<crate::seal::KeyRing>>,
    ) -> Result<Store, StoreError> {
        Store::open_with(
            data_dir,
            identity,
            keys,
            crate::database::DEFAULT_CACHE_BYTES,
        )
    }

    /// [`Store::open_with_keys`] with sled's page cache bounded to `cache_bytes` (at least
    /// [`crate::MIN_CACHE_BYTES`]).
    pub fn open_with(
        data_dir: &Path,
        identity: &Identity,
        keys: Option<Arc<crate::seal::KeyRing>>,
        cache_bytes: u64,
    ) -> Result<Store, StoreError> {
        let folder = folder::claim(data_dir, identity)?;
        let database = Arc::new(Database::open(folder, identity, keys, cache_bytes)?);
        verify::check(&database)?;
        let archive = CdrArchive::open(Arc::clone(&database))?;
        let log_growth = LogGrowth(Arc::clone(&database.log_bytes_since_snapshot));
        Ok(Store {
            resealer: Resealer(Arc::clone(&database), archive.clone()),
            log_growth,
            log_store: LogStore::new(Arc::clone(&database)),
            state_machine: StateMachineStore::open(database, archive)?,
        })
    }

    pub fn resealer(&self) -> Resealer {
        self.resealer.clone()
    }

    /// The log side, for `openraft::Raft::new`.
    pub fn log_store(&self) -> LogStore {
        self.log_store.clone()
    }

    /// The state-machine side, for `openraft::Raft::new`.
    pub fn state_machine(&self) -> StateMachineStore {
        self.state_machine.clone()
    }

    /// What the store measures, for the node's `/metrics`.
    pub fn metrics(&self) -> Arc<crate::StoreMetrics> {
        Arc::clone(&self.resealer.0.metrics)
    }

    /// Bytes appended to the log since the last snapshot.
    pub fn log_growth(&self) -> LogGrowth {
        self.log_growth.clone()
    }

    /// This node's archive of finished call records.
    pub fn cdr_archive(&self) -> crate::CdrArchive {
        self.state_machine.cdr_archive()
    }

    /// A reader of the applied state; see [`StateMachineStore::reader`].
    pub fn reader(&self) -> StateReader {
        self.state_machine.reader()
    }
}
