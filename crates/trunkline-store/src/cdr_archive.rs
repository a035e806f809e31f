//! The archive of finished call detail records: on disk, in log order, never in memory whole.
//!
//! The state machine hands every record a log entry finished (see `trunkline_core::cdr`) to
//! [`CdrArchive::append`] before it publishes the entry's state, keyed by
//! `(log time ms, log index, position)`, all big-endian: keys sort by when the record was made,
//! and the same log writes the same keys on every node, so re-applying the log after a restart
//! writes nothing new. The archive is durable like the rest of the applied state: sled's flush
//! (on every log append and before a snapshot is reported built) covers it, and whatever a
//! crash lost is written again when the log after the last snapshot is applied again.
//!
//! **A node that installs a snapshot never applied what the snapshot covers**, so its archive
//! misses the records made in those entries. It says so: [`CdrArchive::complete_since_ms`] is
//! the log time from which its archive is whole; a listing asking for older records is told
//! (and trunkctl says to ask another node).
//!
//! **Retention** is enforced on every append: records older than the replicated retention
//! (`cdr/retention_days`) are deleted from the front, a bounded number each time.

use std::sync::Arc;

use sled::Tree;
use trunkline_core::cdr::Cdr;

use crate::database::Database;
use crate::StoreError;

/// Bytes of an archive key: log time, log index, position in the entry.
const KEY_BYTES: usize = 8 + 8 + 4;
/// Expired records deleted at most per append: retention catches up over a few appends after
/// the setting is lowered, without one apply deleting millions.
const PRUNE_PER_APPEND: usize = 10_000;
/// In the meta tree: the log time from which this node's archive is whole.
const KEY_COMPLETE_SINCE: &str = "cdr_complete_since_ms";

/// A record with where it sits in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedCdr {
    /// The log time of the entry that finished the record.
    pub recorded_ms: u64,
    pub log_index: u64,
    pub position: u32,
    pub cdr: Cdr,
}

/// What the archive holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    pub records: u64,
    /// The oldest record's log time, if any.
    pub oldest_ms: Option<u64>,
    pub complete_since_ms: u64,
}

/// The records on this node's disk. A cheap handle.
#[derive(Clone)]
pub struct CdrArchive {
    database: Arc<Database>,
}

fn key(recorded_ms: u64, log_index: u64, position: u32) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    key[..8].copy_from_slice(&recorded_ms.to_be_bytes());
    key[8..16].copy_from_slice(&log_index.to_be_bytes());
    key[16..].copy_from_slice(&position.to_be_bytes());
    key
}

fn parse_key(key: &[u8]) -> Result<(u64, u64, u32), StoreError> {
    if key.len() != KEY_BYTES {
        return Err(StoreError::BadLogKey { length: key.len() });
    }
    let mut time = [0u8; 8];
    let mut index = [0u8; 8];
    let mut position = [0u8; 4];
    time.copy_from_slice(&key[..8]);
    index.copy_from_slice(&key[8..16]);
    position.copy_from_slice(&key[16..]);
    Ok((
        u64::from_be_bytes(time),
        u64::from_be_bytes(index),
        u32::from_be_bytes(position),
    ))
}

impl CdrArchive {
    pub(crate) fn new(database: Arc<Database>) -> Self {
        CdrArchive { database }
    }

    fn tree(&self) -> &Tree {
        &self.database.cdrs
    }

    fn sled_error(&self, source: sled::Error) -> StoreError {
        StoreError::Database {
            path: self.database.path.clone(),
            source,
        }
    }

    /// Writes the records one log entry finished, then deletes what the retention no longer
    /// keeps. Not flushed: see the module documentation.
    pub(crate) fn append(
        &self,
        recorded_ms: u64,
        log_index: u64,
        records: &[Cdr],
        retention_ms: u64,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (position, record) in records.iter().enumerate() {
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            batch.insert(
                &key(recorded_ms, log_index, position)[..],
                self.database.encode(record)?,
            );
        }
        self.tree()
            .apply_batch(batch)
            .map_err(|error| self.sled_error(error))?;
        self.prune(recorded_ms.saturating_sub(retention_ms))
    }

    /// Deletes up to [`PRUNE_PER_APPEND`] records made before `horizon_ms`.
    fn prune(&self, horizon_ms: u64) -> Result<(), StoreError> {
        let end = key(horizon_ms, 0, 0);
        let mut batch = sled::Batch::default();
        let mut expired = 0;
        for item in self.tree().range(..&end[..]).take(PRUNE_PER_APPEND) {
            let (old, _) = item.map_err(|error| self.sled_error(error))?;
            batch.remove(old);
            expired += 1;
        }
        if expired > 0 {
            self.tree()
                .apply_batch(batch)
                .map_err(|error| self.sled_error(error))?;
        }
        Ok(())
    }

    /// Records made from `since_ms` (inclusive) to `until_ms` (exclusive), oldest first, read
    /// from disk as the iterator goes. Each value is checked (checksum, seal) as it is read.
    pub fn scan(
        &self,
        since_ms: u64,
        until_ms: u64,
    ) -> impl Iterator<Item = Result<ArchivedCdr, StoreError>> + Send + 'static {
        let database = Arc::clone(&self.database);
        let start = key(since_ms, 0, 0);
        let end = key(until_ms, 0, 0);
        let iter = if since_ms < until_ms {
            Some(self.tree().range(start..end))
        } else {
            None
        };
        iter.into_iter().flatten().map(move |item| {
            let (key, value) = item.map_err(|source| StoreError::Database {
                path: database.path.clone(),
                source,
            })?;
            let (recorded_ms, log_index, position) = parse_key(&key)?;
            Ok(ArchivedCdr {
                recorded_ms,
                log_index,
                position,
                cdr: database.decode(&value)?,
            })
        })
    }

    /// The log time from which this node's archive holds every record (0: all of it).
    pub fn complete_since_ms(&self) -> Result<u64, StoreError> {
        match self
            .database
            .meta
            .get(KEY_COMPLETE_SINCE)
            .map_err(|error| self.sled_error(error))?
        {
            None => Ok(0),
            Some(bytes) => self.database.decode(&bytes),
        }
    }

    /// Notes that records made before `since_ms` may be missing here: this node installed a
    /// snapshot of entries it never applied. Only ever moves later.
    pub(crate) fn mark_incomplete_before(&self, since_ms: u64) -> Result<(), StoreError> {
        if self.complete_since_ms()? >= since_ms {
            return Ok(());
        }
        self.database
            .meta
            .insert(KEY_COMPLETE_SINCE, self.database.encode(&since_ms)?)
            .map_err(|error| self.sled_error(error))?;
        Ok(())
    }

    pub fn stats(&self) -> Result<ArchiveStats, StoreError> {
        let oldest_ms = match self
            .tree()
            .first()
            .map_err(|error| self.sled_error(error))?
        {
            Some((key, _)) => Some(parse_key(&key)?.0),
            None => None,
        };
        Ok(ArchiveStats {
            records: self.tree().len() as u64,
            oldest_ms,
            complete_since_ms: self.complete_since_ms()?,
        })
    }
}
