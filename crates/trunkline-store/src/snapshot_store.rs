//! The current snapshot on disk: the only durable copy of the state machine.
//!
//! The applied state lives in memory (see [`state_machine`](crate::state_machine)); what makes
//! it survive a restart is the snapshot stored here plus the committed log after it, which
//! openraft re-applies at start-up. So a snapshot is flushed before it is reported built or
//! installed: openraft purges the log up to it right after.
//!
//! The snapshot tree holds the meta and the data (the codec's encoding of an
//! [`AppliedState`]), always written together in one batch, and a counter that makes every
//! snapshot id unique even across restarts.

// The helpers here return openraft's `StorageError`, the error type of the trait methods they
// serve; its size is openraft's choice, and boxing it would only be undone at every call.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::Arc;

use openraft::{ErrorSubject, ErrorVerb, Snapshot, SnapshotMeta, StorageError};

use crate::codec;
use crate::database::Database;
use crate::error::storage_error;
use crate::state_machine::AppliedState;
use crate::{Node, NodeId, TypeConfig};

/// The [`SnapshotMeta`] of the current snapshot.
pub(crate) const KEY_META: &str = "meta";
/// The data of the current snapshot, as sent to followers.
const KEY_DATA: &str = "data";
/// How many snapshots this folder has built; part of every snapshot id.
const KEY_COUNTER: &str = "counter";

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
    pub(crate) async fn build(
        &self,
        applied: &AppliedState,
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
        let mut batch = sled::Batch::default();
        batch.insert(
            KEY_COUNTER,
            self.database
                .encode(&counter)
                .map_err(|error| write_error(&error))?,
        );
        if newest {
            batch.insert(
                KEY_META,
                self.database
                    .encode(&meta)
                    .map_err(|error| write_error(&error))?,
            );
            // Stored sealed; handed to openraft (and sent to followers) plain.
            let sealed = self
                .database
                .seal(data.clone())
                .map_err(|error| write_error(&error))?;
            batch.insert(KEY_DATA, sealed);
        } else {
            tracing::info!(
                built = %meta.snapshot_id,
                stored = ?stored.map(|stored| stored.snapshot_id),
                "a newer snapshot was installed while this one was built; keeping the newer one"
            );
        }
        self.database
            .snapshot
            .apply_batch(batch)
            .map_err(|error| write_error(&error))?;
        self.flush(&meta).await?;
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
        let signature = Some(meta.signature());
        let write_error = |error: &dyn std::error::Error| -> StorageError<NodeId> {
            openraft::StorageIOError::write_snapshot(
                signature.clone(),
                openraft::AnyError::error(error),
            )
            .into()
        };
        let _one_writer = self.write_lock.lock().await;
        let mut batch = sled::Batch::default();
        batch.insert(
            KEY_META,
            self.database
                .encode(meta)
                .map_err(|error| write_error(&error))?,
        );
        let sealed = self
            .database
            .seal(data.to_vec())
            .map_err(|error| write_error(&error))?;
        batch.insert(KEY_DATA, sealed);
        self.database
            .snapshot
            .apply_batch(batch)
            .map_err(|error| write_error(&error))?;
        self.flush(meta).await?;
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
        let data = self
            .database
            .snapshot
            .get(KEY_DATA)
            .map_err(|error| read_error(&error))?
            .ok_or_else(|| {
                read_error(&std::io::Error::other(
                    "the snapshot's meta is stored but its data is missing",
                ))
            })?;
        let data = self
            .database
            .unseal(&data)
            .map_err(|error| read_error(&error))?;
        Ok(Some((meta, data.into_owned())))
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
    async fn flush(&self, meta: &Meta) -> StorageResult<()> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        self.database
            .flush()
            .await
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Write, &error))?;
        // The log before this snapshot may now be purged: start counting again.
        self.database
            .log_bytes_since_snapshot
            .store(0, std::sync::atomic::Ordering::Relaxed);
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
