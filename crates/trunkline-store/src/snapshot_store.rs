//! The current snapshot on disk: the only durable copy of the state machine.
//!
//! The applied state lives in memory (see [`state_machine`](crate::state_machine)); what makes
//! it survive a restart is the snapshot stored here plus the committed log after it, which
//! openraft re-applies at start-up. So a snapshot is flushed before it is reported built or
//! installed: openraft purges the log up to it right after.
//!
//! The data (the codec's encoding of an [`AppliedState`], sealed when the node has keys) is a
//! file in [`SNAPSHOT_DIR`], written beside its final name, synced and renamed into place;
//! the snapshot tree then names it, with the meta and a counter that makes every snapshot id
//! and file name unique even across restarts, in one batch, so meta and data never disagree.
//! Files no batch names (a crash between the rename and the batch, a replaced snapshot) are
//! removed after the next snapshot is stored. The data used to be a value in the tree: sled
//! 0.34 keeps a value that large resident for good (beyond its cache bound) and each replaced
//! one until enough later activity, which cost a 5M-row deck's node 85 MiB to 170 MiB; a
//! folder written so still loads, and its next snapshot moves out.

// The helpers here return openraft's `StorageError`, the error type of the trait methods they
// serve; its size is openraft's choice, and boxing it would only be undone at every call.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{ErrorSubject, ErrorVerb, Snapshot, SnapshotMeta, StorageError};

use crate::codec;
use crate::database::Database;
use crate::error::storage_error;
use crate::folder::SNAPSHOT_DIR;
use crate::state_machine::AppliedState;
use crate::{Node, NodeId, TypeConfig};

/// The [`SnapshotMeta`] of the current snapshot.
pub(crate) const KEY_META: &str = "meta";
/// The name of the current snapshot's data file in [`SNAPSHOT_DIR`].
const KEY_FILE: &str = "file";
/// The data of the current snapshot, where earlier builds kept it; removed by the next
/// snapshot stored.
const KEY_DATA: &str = "data";
/// How many snapshots this folder has built or installed; part of every snapshot id and
/// data file name.
const KEY_COUNTER: &str = "counter";
/// Data file names: this, the counter, and [`FILE_SUFFIX`].
const FILE_PREFIX: &str = "snapshot-";
const FILE_SUFFIX: &str = ".bin";

type StorageResult<T> = Result<T, StorageError<NodeId>>;
type Meta = SnapshotMeta<NodeId, Node>;

pub(crate) struct SnapshotStore {
    database: Arc<Database>,
    /// Serialises building and installing, so a slow build can't replace a newer install.
    write_lock: tokio::sync::Mutex<()>,
}

impl SnapshotStore {
    pub(crate) fn new(database: Arc<Database>) -> Self {
        SnapshotStore {
            database,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn metrics(&self) -> &crate::StoreMetrics {
        &self.database.metrics
    }

    /// Builds a snapshot of `applied` and stores it as the current one, unless the stored one
    /// is newer (an install overtook this build); flushed before it returns.
    /// `covered_bytes`: the log bytes counted since the last snapshot when `applied` was
    /// taken ([`SnapshotStore::log_bytes`]).
    pub(crate) async fn build(
        &self,
        applied: &AppliedState,
        covered_bytes: u64,
    ) -> StorageResult<Snapshot<TypeConfig>> {
        let write_error = |error: &dyn std::error::Error| -> StorageError<NodeId> {
            openraft::StorageIOError::write_snapshot(None, openraft::AnyError::error(error)).into()
        };
        let _one_writer = self.write_lock.lock().await;
        let started = std::time::Instant::now();

        let data = codec::encode(applied).map_err(|error| write_error(&error))?;
        let counter = self.counter()?.saturating_add(1);
        let snapshot_id = match applied.last_applied {
            Some(log_id) => format!("{}-{}-{counter}", log_id.leader_id.term, log_id.index),
            None => format!("none-{counter}"),
        };
        let meta = Meta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id,
        };

        let stored = self.load_meta()?;
        let newest = stored
            .as_ref()
            .is_none_or(|stored| stored.last_log_id <= meta.last_log_id);
        if !newest {
            tracing::info!(
                built = %meta.snapshot_id,
                stored = ?stored.map(|stored| stored.snapshot_id),
                "a newer snapshot was installed while this one was built; keeping the newer one"
            );
        }
        self.store(counter, &meta, newest.then_some(&data[..]), covered_bytes)
            .await?;
        let metrics = self.metrics();
        metrics.snapshot_build_seconds.observe(started.elapsed());
        if newest {
            metrics.snapshot_bytes.set(data.len() as u64);
        }

        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    /// Stores a snapshot received from the leader as the current one; flushed before it returns.
    pub(crate) async fn install(&self, meta: &Meta, data: &[u8]) -> StorageResult<()> {
        // Everything appended before is behind the installed state, or replaced by it.
        let covered_bytes = self.log_bytes();
        let _one_writer = self.write_lock.lock().await;
        let counter = self.counter()?.saturating_add(1);
        self.store(counter, meta, Some(data), covered_bytes).await?;
        self.metrics().snapshots_installed.inc();
        self.metrics().snapshot_bytes.set(data.len() as u64);
        Ok(())
    }

    /// The current snapshot's meta and data, if one was ever built or installed.
    pub(crate) fn load(&self) -> StorageResult<Option<(Meta, Vec<u8>)>> {
        let Some(meta) = self.load_meta()? else {
            return Ok(None);
        };
        let read_error = |error: &dyn std::error::Error| -> StorageError<NodeId> {
            openraft::StorageIOError::read_snapshot(
                Some(meta.signature()),
                openraft::AnyError::error(error),
            )
            .into()
        };
        let named = self
            .database
            .snapshot
            .get(KEY_FILE)
            .map_err(|error| read_error(&error))?;
        let data = match named {
            Some(name) => {
                let path = self.file_path(&name).map_err(|error| read_error(&error))?;
                fs::read(&path).map_err(|error| {
                    read_error(&std::io::Error::new(
                        error.kind(),
                        format!("the snapshot's data file {}: {error}", path.display()),
                    ))
                })?
            }
            None => self
                .database
                .snapshot
                .get(KEY_DATA)
                .map_err(|error| read_error(&error))?
                .ok_or_else(|| {
                    read_error(&std::io::Error::other(
                        "the snapshot's meta is stored but its data is missing",
                    ))
                })?
                .to_vec(),
        };
        let opened = match self
            .database
            .unseal(&data)
            .map_err(|error| read_error(&error))?
        {
            Cow::Owned(opened) => Some(opened),
            Cow::Borrowed(_) => None,
        };
        Ok(Some((meta, opened.unwrap_or(data))))
    }

    /// Log bytes appended since the last snapshot was stored, as counted now.
    pub(crate) fn log_bytes(&self) -> u64 {
        self.database
            .log_bytes_since_snapshot
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn directory(&self) -> PathBuf {
        self.database.path.join(SNAPSHOT_DIR)
    }

    /// Where the data file `name` (as the snapshot tree holds it) is; refuses a name that is
    /// not one this store makes.
    fn file_path(&self, name: &[u8]) -> std::io::Result<PathBuf> {
        std::str::from_utf8(name)
            .ok()
            .filter(|name| is_data_file(name))
            .map(|name| self.directory().join(name))
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "the snapshot tree names {:?}, which is not a snapshot data file",
                    String::from_utf8_lossy(name)
                ))
            })
    }

    /// Writes `sealed` as the data file of snapshot number `counter`, durably, on a blocking
    /// thread; returns its name.
    async fn write_file(&self, counter: u64, sealed: Vec<u8>) -> std::io::Result<String> {
        let name = format!("{FILE_PREFIX}{counter:020}{FILE_SUFFIX}");
        let directory = self.directory();
        let written = name.clone();
        tokio::task::spawn_blocking(move || write_durably(&directory, &written, &sealed))
            .await
            .map_err(|join_error| {
                std::io::Error::other(format!("the snapshot writer did not finish: {join_error}"))
            })??;
        Ok(name)
    }

    /// Stores snapshot number `counter` (the caller holds the write lock): with `data`, as
    /// the current one — its file written, then named in one batch with `meta`, and data kept
    /// the old way dropped; without (an install overtook the build), only the counter. Flushed
    /// before it returns; files no longer named are removed after.
    async fn store(
        &self,
        counter: u64,
        meta: &Meta,
        data: Option<&[u8]>,
        covered_bytes: u64,
    ) -> StorageResult<()> {
        let signature = Some(meta.signature());
        let write_error = |error: &dyn std::error::Error| -> StorageError<NodeId> {
            openraft::StorageIOError::write_snapshot(
                signature.clone(),
                openraft::AnyError::error(error),
            )
            .into()
        };
        let mut batch = sled::Batch::default();
        batch.insert(
            KEY_COUNTER,
            self.database
                .encode(&counter)
                .map_err(|error| write_error(&error))?,
        );
        if let Some(data) = data {
            // Stored sealed; handed to openraft (and sent to followers) plain.
            let sealed = self
                .database
                .seal(data.to_vec())
                .map_err(|error| write_error(&error))?;
            let file = self
                .write_file(counter, sealed)
                .await
                .map_err(|error| write_error(&error))?;
            batch.insert(
                KEY_META,
                self.database
                    .encode(meta)
                    .map_err(|error| write_error(&error))?,
            );
            batch.insert(KEY_FILE, file.as_bytes());
            batch.remove(KEY_DATA);
        }
        self.database
            .snapshot
            .apply_batch(batch)
            .map_err(|error| write_error(&error))?;
        self.flush(meta, covered_bytes).await?;
        self.remove_unnamed_files();
        Ok(())
    }

    /// Removes every data file the snapshot tree does not name (replaced snapshots, files of
    /// builds a crash or a failure cut short). Best effort: a file left over only takes room
    /// until the next snapshot.
    fn remove_unnamed_files(&self) {
        let current = match self.database.snapshot.get(KEY_FILE) {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, "can't read which snapshot file is current; keeping them all");
                return;
            }
        };
        let directory = self.directory();
        let entries = match fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, path = %directory.display(), "can't list the snapshot files");
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = is_data_file(&name) || is_temporary_file(&name);
            if !ours || current.as_deref() == Some(name.as_bytes()) {
                continue;
            }
            if let Err(error) = fs::remove_file(entry.path()) {
                tracing::warn!(%error, path = %entry.path().display(), "can't remove an old snapshot file");
            }
        }
    }

    /// Seals the current data file again with the current key when another key sealed it.
    /// Blocking. Returns whether it was rewritten.
    pub(crate) fn reseal_file(&self) -> Result<bool, crate::StoreError> {
        let database_error = |source: sled::Error| crate::StoreError::Database {
            path: self.database.path.clone(),
            source,
        };
        let Some(name) = self
            .database
            .snapshot
            .get(KEY_FILE)
            .map_err(database_error)?
        else {
            return Ok(false);
        };
        let io_error = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| crate::StoreError::Io {
                action,
                path,
                source,
            }
        };
        let path = self
            .file_path(&name)
            .map_err(io_error("name", &self.directory()))?;
        let data = fs::read(&path).map_err(io_error("read", &path))?;
        let Some(sealed) = self.database.resealed(&data)? else {
            return Ok(false);
        };
        let file_name = String::from_utf8_lossy(&name).into_owned();
        write_durably(&self.directory(), &file_name, &sealed).map_err(io_error("write", &path))?;
        Ok(true)
    }

    pub(crate) fn load_meta(&self) -> StorageResult<Option<Meta>> {
        let subject = ErrorSubject::Snapshot(None);
        let bytes = self
            .database
            .snapshot
            .get(KEY_META)
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Read, &error))?;
        bytes
            .map(|bytes| self.database.decode(&bytes))
            .transpose()
            .map_err(|error| storage_error(subject, ErrorVerb::Read, &error))
    }

    fn counter(&self) -> StorageResult<u64> {
        let subject = ErrorSubject::Snapshot(None);
        let bytes = self
            .database
            .snapshot
            .get(KEY_COUNTER)
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Read, &error))?;
        match bytes {
            Some(bytes) => self
                .database
                .decode(&bytes)
                .map_err(|error| storage_error(subject, ErrorVerb::Read, &error)),
            None => Ok(0),
        }
    }

    /// Flushes, then records the snapshot in the acknowledged record (at least this one is
    /// stored now: this one, or a newer one that overtook it).
    async fn flush(&self, meta: &Meta, covered_bytes: u64) -> StorageResult<()> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        self.database
            .flush()
            .await
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Write, &error))?;
        // The log before this snapshot may now be purged: count only what was appended since
        // its state was taken. (Starting again from zero lost what was appended while a large
        // snapshot was built: a deck committed meanwhile was never compacted.)
        let _ = self.database.log_bytes_since_snapshot.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |bytes| Some(bytes.saturating_sub(covered_bytes)),
        );
        let Some(covered) = meta.last_log_id else {
            return Ok(());
        };
        self.database
            .acknowledge(move |record| {
                if record
                    .snapshot
                    .is_none_or(|known| known.index < covered.index)
                {
                    record.snapshot = Some(covered);
                }
            })
            .await
            .map_err(|error| storage_error(subject, ErrorVerb::Write, &error))
    }
}

fn is_data_file(name: &str) -> bool {
    name.strip_prefix(FILE_PREFIX)
        .and_then(|rest| rest.strip_suffix(FILE_SUFFIX))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

fn is_temporary_file(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Writes `bytes` as `directory/name`: to a temporary file first, synced, renamed over the
/// name, and the directory synced, so the name holds either nothing, the old bytes or all of
/// the new ones.
fn write_durably(directory: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(directory)?;
    let temporary = directory.join(format!(".{name}.tmp"));
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, directory.join(name))?;
    File::open(directory)?.sync_all()
}
