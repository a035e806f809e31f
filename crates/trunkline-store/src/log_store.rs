//! The Raft log and the vote: openraft's [`RaftLogStorage`] on sled.
//!
//! Durable before acknowledging: [`RaftLogStorage::save_vote`] returns only once the vote is
//! flushed to disk, and [`RaftLogStorage::append`] calls its callback only after the batch is
//! flushed. Truncate and purge are flushed too. Every write is awaited before the next one
//! starts, which keeps the write order openraft requires.
//!
//! The committed log id is saved without a flush of its own: it rides on the next flush (of an
//! append, a vote, or sled's periodic one). sled writes in order, so a committed id on disk
//! never points past the entries it was saved after; a stale one only means fewer entries are
//! re-applied at start-up, and the leader brings the rest.
//!
//! Invariants are checked on both sides of the disk: an appended batch must be consecutive, a
//! truncation must leave the purged prefix alone, and an entry read back must carry the index
//! of its key. (An append below the purged id is allowed: openraft's own start-up repair and
//! conformance suite do it.)

// The helpers here return openraft's `StorageError`, the error type of the trait methods they
// serve; its size is openraft's choice, and boxing it would only be undone at every call.
#![allow(clippy::result_large_err)]

use std::fmt::{self, Debug};
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, Vote,
};

use crate::codec::{self, log_key};
use crate::database::Database;
use crate::error::{storage_error, violation};
use crate::{NodeId, TypeConfig};

/// In the raft-state tree: the last saved [`Vote`].
pub(crate) const KEY_VOTE: &str = "vote";
/// In the raft-state tree: the last saved committed [`LogId`].
pub(crate) const KEY_COMMITTED: &str = "committed";
/// In the raft-state tree: the [`LogId`] of the last purged entry.
pub(crate) const KEY_LAST_PURGED: &str = "last_purged";

/// Most bytes of encoded entries one [`RaftLogReader::limited_get_log_entries`] call returns
/// (at least one entry is always returned). Replication reads through it, so it bounds one
/// append-entries message; the peer transport's message limit must exceed it plus one entry.
pub const MAX_READ_BYTES: usize = 4 * 1024 * 1024;

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// The log side of a [`Store`](crate::Store): log entries and the vote. A cheap handle; clones
/// share the database.
#[derive(Clone)]
pub struct LogStore {
    database: Arc<Database>,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("path", &self.database.path)
            .finish_non_exhaustive()
    }
}

impl LogStore {
    pub(crate) fn new(database: Arc<Database>) -> Self {
        LogStore { database }
    }

    fn read_raft_state<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        subject: ErrorSubject<NodeId>,
    ) -> StorageResult<Option<T>> {
        let bytes = self
            .database
            .raft_state
            .get(key)
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Read, &error))?;
        bytes
            .map(|bytes| self.database.decode(&bytes))
            .transpose()
            .map_err(|error| storage_error(subject, ErrorVerb::Read, &error))
    }

    fn last_purged(&self) -> StorageResult<Option<LogId<NodeId>>> {
        self.read_raft_state(KEY_LAST_PURGED, ErrorSubject::Logs)
    }

    async fn flush(&self, subject: ErrorSubject<NodeId>) -> StorageResult<()> {
        self.database
            .flush()
            .await
            .map_err(|error| storage_error(subject, ErrorVerb::Write, &error))
    }

    /// Reads entries `[start, end)` (`end` `None`: to the last one), stopping after
    /// `max_bytes` of encoded entries but never before the first.
    fn read_entries(
        &self,
        start: u64,
        end: Option<u64>,
        max_bytes: Option<usize>,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        if end.is_some_and(|end| start >= end) {
            return Ok(Vec::new());
        }
        let upper = match end {
            Some(end) => Bound::Excluded(log_key(end)),
            None => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        let mut bytes_read = 0usize;
        for item in self
            .database
            .logs
            .range((Bound::Included(log_key(start)), upper))
        {
            let (key, value) =
                item.map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?;
            entries.push(decode_entry(&self.database, &key, &value)?);
            bytes_read = bytes_read.saturating_add(value.len());
            if max_bytes.is_some_and(|max_bytes| bytes_read >= max_bytes) {
                break;
            }
        }
        Ok(entries)
    }
}

/// Decodes a stored entry and checks it sits under its own index.
pub(crate) fn decode_entry(
    database: &Database,
    key: &[u8],
    value: &[u8],
) -> StorageResult<Entry<TypeConfig>> {
    let index = codec::log_index(key)
        .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?;
    let entry: Entry<TypeConfig> = database
        .decode(value)
        .map_err(|error| storage_error(ErrorSubject::LogIndex(index), ErrorVerb::Read, &error))?;
    if entry.log_id.index != index {
        return Err(violation(
            ErrorSubject::LogIndex(index),
            ErrorVerb::Read,
            format!(
                "the entry stored under index {index} is entry {}",
                entry.log_id
            ),
        ));
    }
    Ok(entry)
}

/// `[start, end)` of a range of log indexes; `end` `None` means no upper bound. An empty
/// range comes back with `start >= end`.
fn index_range(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&start) => start,
        Bound::Excluded(&start) => match start.checked_add(1) {
            Some(start) => start,
            None => return (u64::MAX, Some(u64::MAX)),
        },
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        // Included(u64::MAX) has no exclusive end that fits: the same as no end.
        Bound::Included(&end) => end.checked_add(1),
        Bound::Excluded(&end) => Some(end),
        Bound::Unbounded => None,
    };
    (start, end)
}

fn later(a: Option<LogId<NodeId>>, b: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a.index >= b.index { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let (start, end) = index_range(&range);
        self.read_entries(start, end, None)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        self.read_entries(start, Some(end), Some(MAX_READ_BYTES))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id = self.last_purged()?;
        let last_entry = self
            .database
            .logs
            .last()
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?;
        let last_entry_log_id = match last_entry {
            Some((key, value)) => Some(decode_entry(&self.database, &key, &value)?.log_id),
            None => None,
        };
        // After a crash in the middle of a purge, entries at or below the purged id may remain;
        // they never count as the last entry.
        let last_log_id = later(last_entry_log_id, last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let bytes = self
            .database
            .encode(vote)
            .map_err(|error| storage_error(ErrorSubject::Vote, ErrorVerb::Write, &error))?;
        self.database
            .raft_state
            .insert(KEY_VOTE, bytes)
            .map_err(|error| storage_error(ErrorSubject::Vote, ErrorVerb::Write, &error))?;
        self.flush(ErrorSubject::Vote).await?;
        let vote = *vote;
        self.database
            .acknowledge(move |record| record.vote = Some(vote))
            .await
            .map_err(|error| storage_error(ErrorSubject::Vote, ErrorVerb::Write, &error))
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.read_raft_state(KEY_VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let written = match committed {
            Some(committed) => {
                self.database.metrics.committed_index.set(committed.index);
                let bytes = self.database.encode(&committed).map_err(|error| {
                    storage_error(ErrorSubject::Store, ErrorVerb::Write, &error)
                })?;
                self.database.raft_state.insert(KEY_COMMITTED, bytes)
            }
            None => self.database.raft_state.remove(KEY_COMMITTED),
        };
        written
            .map(|_previous| ())
            .map_err(|error| storage_error(ErrorSubject::Store, ErrorVerb::Write, &error))
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        self.read_raft_state(KEY_COMMITTED, ErrorSubject::Store)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut previous: Option<LogId<NodeId>> = None;
        let mut appended_bytes = 0u64;
        for entry in entries {
            let log_id = entry.log_id;
            if let Some(previous) = previous {
                if previous.index.checked_add(1) != Some(log_id.index) {
                    return Err(violation(
                        ErrorSubject::Log(log_id),
                        ErrorVerb::Write,
                        format!("entry {log_id} follows {previous} in one append: a hole"),
                    ));
                }
            }
            let bytes = self.database.encode(&entry).map_err(|error| {
                storage_error(ErrorSubject::Log(log_id), ErrorVerb::Write, &error)
            })?;
            appended_bytes = appended_bytes.saturating_add(bytes.len() as u64);
            batch.insert(&log_key(log_id.index), bytes);
            previous = Some(log_id);
        }
        self.database
            .logs
            .apply_batch(batch)
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Write, &error))?;
        self.database
            .log_bytes_since_snapshot
            .fetch_add(appended_bytes, std::sync::atomic::Ordering::Relaxed);

        // Once sled holds the batch durably, record that, before acknowledging it.
        let flushed = match previous {
            Some(last) => {
                self.database
                    .flush_and_acknowledge(move |record| record.last_log_id = Some(last))
                    .await
            }
            None => self
                .database
                .flush()
                .await
                .map_err(|error| error.to_string()),
        };
        match flushed {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                let result = violation(ErrorSubject::Logs, ErrorVerb::Write, &error);
                callback.log_io_completed(Err(io::Error::other(error)));
                Err(result)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        if let Some(purged) = self
            .last_purged()?
            .filter(|purged| purged.index >= log_id.index)
        {
            return Err(violation(
                ErrorSubject::Log(log_id),
                ErrorVerb::Delete,
                format!("truncating from {log_id} would remove the purged entry {purged}"),
            ));
        }
        // The record first: once it says the log ends before `log_id`, a crash half-way through
        // the truncation leaves sled with more than the record, never less.
        let new_last = match log_id.index.checked_sub(1) {
            Some(previous) => match self
                .database
                .logs
                .get(log_key(previous))
                .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?
            {
                Some(value) => {
                    Some(decode_entry(&self.database, &log_key(previous), &value)?.log_id)
                }
                None => self.last_purged()?,
            },
            None => None,
        };
        let truncated_index = log_id.index;
        self.database
            .acknowledge(move |record| {
                if record
                    .last_log_id
                    .is_some_and(|last| last.index >= truncated_index)
                {
                    record.last_log_id = new_last;
                }
            })
            .await
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, &error))?;
        let mut batch = sled::Batch::default();
        for key in self.database.logs.range(log_key(log_id.index)..).keys() {
            let key =
                key.map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?;
            batch.remove(key);
        }
        self.database
            .logs
            .apply_batch(batch)
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, &error))?;
        self.flush(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        if self
            .last_purged()?
            .is_some_and(|purged| purged.index >= log_id.index)
        {
            return Ok(());
        }
        // The purged id first: sled writes in order, so a crash half-way leaves extra entries
        // below it (ignored), never a purged entry without its id.
        let bytes = self
            .database
            .encode(&log_id)
            .map_err(|error| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, &error))?;
        self.database
            .raft_state
            .insert(KEY_LAST_PURGED, bytes)
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, &error))?;
        let mut batch = sled::Batch::default();
        for key in self.database.logs.range(..=log_key(log_id.index)).keys() {
            let key =
                key.map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?;
            batch.remove(key);
        }
        self.database
            .logs
            .apply_batch(batch)
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, &error))?;
        self.flush(ErrorSubject::Logs).await
    }
}
