//! The archive of finished call detail records: append-only segment files in the data folder's
//! [`ARCHIVE_DIR`](crate::folder::ARCHIVE_DIR), read from disk as they are scanned, never held
//! in memory.
//!
//! The state machine hands every record a log entry finished (see `trunkline_core::cdr`) to
//! [`CdrArchive::append`] before it publishes the entry's state, keyed by
//! `(log time ms, log index, position)`: keys sort by when the record was made, and the same
//! log makes the same keys on every node. A segment ([`segment`]) holds one day of log time and
//! at most [`SEGMENT_BYTES`], is named by its first key, and frames each record with its
//! length, key and checksum; the record itself is encoded (and, with keys, sealed) like every
//! value the database stores. What memory holds is the list of segments, the open segment's
//! file and its last key.
//!
//! **Durability.** Appends are written, not synced. [`CdrArchive::sync`] makes them durable
//! and runs before a snapshot is reported built or installed, because openraft may then purge
//! the log that could make them again. Whatever a crash loses after the last sync is made again
//! when the log after the snapshot is applied again: at open, the newest segment is cut back to
//! its last whole record (a torn tail), and an append skips every record whose key is not
//! after the last one on disk, so each record is written once. Where the last sync reached is
//! kept in the meta tree: damage before it is never taken for a torn tail.
//!
//! **Damage** anywhere else (a bad checksum, an impossible length, a key out of order) is never
//! skipped: [`CdrArchive::scan`] yields it as an error and stops.
//!
//! **A node that installs a snapshot never applied what the snapshot covers**, so its archive
//! misses the records made in those entries. It says so: [`CdrArchive::complete_since_ms`] is
//! the log time from which its archive is whole; a listing asking for older records is told.
//! It also notes the *boundary*, the first key an entry after the snapshot can make (the
//! snapshot's log time, its last index + 1): every key from there on is this node's own
//! append, every key before may be missing, and no segment holds keys on both sides (an
//! append at or past the boundary starts a new segment). The node then fetches the missing
//! records from a peer and hands them to a [`Backfill`] ([`backfill`]), which merges them with
//! the segments before the boundary into staged files and swaps those in; only then does
//! `complete_since_ms` move back.
//!
//! **Retention** (`cdr/retention_days`, replicated): a scan never returns a record older than
//! the retention allows, and every append deletes the segments whose whole day has expired
//! (whole files, a bounded number each time).
//!
//! A folder written before the archive moved out of sled has its records in the sled tree
//! `cdrs`; [`CdrArchive::open`] moves them into segments once and empties the tree.

#[cfg(test)]
mod tests;

mod backfill;
pub(crate) mod segment;

pub use backfill::{Backfill, BackfillOutcome};

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use trunkline_core::cdr::Cdr;

use crate::database::{Database, ResealProgress, RESEAL_PROGRESS_EVERY};
use crate::folder::{io_error, ARCHIVE_DIR};
use crate::StoreError;
use segment::{day_of, encode_frame, path_of, FrameError, FrameReader, RecordKey, DAY_MS};

/// A segment is closed and a new one started once it would grow past this.
pub(crate) const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Expired segments deleted at most per append: retention catches up over a few appends after
/// the setting is lowered, without one apply deleting months.
const PRUNE_SEGMENTS_PER_APPEND: usize = 16;
/// Bytes of frames gathered before they are written out.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// Records moved from the old sled tree per write.
const MIGRATE_BATCH_RECORDS: usize = 10_000;
/// The ending of a segment being re-sealed, before it replaces the segment.
const TEMPORARY_SUFFIX: &str = ".tmp";
/// In the meta tree: the log time from which this node's archive is whole.
const KEY_COMPLETE_SINCE: &str = "cdr_complete_since_ms";
/// In the meta tree: the first key this node appended after its last snapshot install (see
/// the module documentation).
const KEY_BOUNDARY: &str = "cdr_boundary";
/// In the meta tree: the segment and length the last [`CdrArchive::sync`] made durable.
const KEY_SYNCED: &str = "cdr_synced";

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
    inner: Arc<Inner>,
}

struct Inner {
    database: Arc<Database>,
    /// The folder of the segments.
    folder: PathBuf,
    segments: Mutex<Segments>,
    /// Held while a segment is rewritten beside itself (a re-seal) and while a backfill swaps
    /// its staged segments in, so neither renames a file over the other's. Taken before
    /// `segments`, never after.
    rewrites: Mutex<()>,
    /// A [`Backfill`] is under way: at most one at a time.
    backfilling: std::sync::atomic::AtomicBool,
}

/// What memory holds of the archive.
struct Segments {
    /// The first key of every segment, oldest first; the last one is `open`'s.
    firsts: Vec<RecordKey>,
    /// The newest segment, appended to.
    open: Option<OpenSegment>,
    /// Records made before this log time are past the retention: never returned.
    retained_since_ms: u64,
    /// A segment was created since the last sync: the folder must be synced too.
    created_since_sync: bool,
    /// [`SEGMENT_BYTES`], smaller in tests.
    segment_bytes: u64,
    /// The first key appended after the last snapshot install: no segment holds keys on both
    /// sides of it. `None`: no snapshot was installed (or it was before the boundary was kept).
    boundary: Option<RecordKey>,
}

struct OpenSegment {
    first: RecordKey,
    /// Opened for appending.
    file: File,
    /// Bytes written, all of them whole frames.
    bytes: u64,
    /// The key of the last frame written.
    last: Option<RecordKey>,
}

/// Where the last sync reached, as kept in the meta tree.
type SyncedMark = ((u64, u64, u32), u64);

impl Segments {
    fn last_key(&self) -> Option<RecordKey> {
        self.open.as_ref().and_then(|open| open.last)
    }
}

impl CdrArchive {
    /// Opens the archive of an open database: lists the segments, cuts a torn tail off the
    /// newest, and moves records left in the old sled tree into segments. Blocking.
    pub(crate) fn open(database: Arc<Database>) -> Result<CdrArchive, StoreError> {
        let folder = database.path.join(ARCHIVE_DIR);
        fs::create_dir_all(&folder).map_err(io_error("create", &folder))?;
        let mut firsts = Vec::new();
        let entries = fs::read_dir(&folder).map_err(io_error("list", &folder))?;
        for entry in entries {
            let entry = entry.map_err(io_error("list", &folder))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(TEMPORARY_SUFFIX) {
                // A re-seal a crash interrupted: the segment it was replacing is still there.
                let path = entry.path();
                fs::remove_file(&path).map_err(io_error("remove", &path))?;
                continue;
            }
            match RecordKey::from_file_name(&name) {
                Some(first) => firsts.push(first),
                None => {
                    return Err(StoreError::Corrupt {
                        path: database.path.clone(),
                        detail: format!(
                            "{ARCHIVE_DIR}/{name} is not a segment of the call record archive"
                        ),
                    })
                }
            }
        }
        firsts.sort_unstable();
        let synced = read_synced_mark(&database)?;
        let boundary = read_boundary(&database)?;
        let open = open_newest(&database, &folder, &mut firsts, synced)?;
        let archive = CdrArchive {
            inner: Arc::new(Inner {
                database,
                folder,
                segments: Mutex::new(Segments {
                    firsts,
                    open,
                    retained_since_ms: 0,
                    created_since_sync: false,
                    segment_bytes: SEGMENT_BYTES,
                    boundary,
                }),
                rewrites: Mutex::new(()),
                backfilling: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        archive.migrate_from_sled()?;
        Ok(archive)
    }

    fn lock(&self) -> MutexGuard<'_, Segments> {
        // A panic while holding the lock can only come from a bug; what is on disk is whole
        // frames up to `bytes`, which is only raised after a write succeeded.
        match self.inner.segments.lock() {
            Ok(segments) => segments,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The lock a rewrite of segment files holds; taken before [`CdrArchive::lock`].
    fn lock_rewrites(&self) -> MutexGuard<'_, ()> {
        // It guards no data, only the order of renames.
        match self.inner.rewrites.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Writes the records one log entry finished (those not already on disk), then deletes
    /// the segments the retention no longer keeps. Not synced: see the module documentation.
    pub(crate) fn append(
        &self,
        recorded_ms: u64,
        log_index: u64,
        records: &[Cdr],
        retention_ms: u64,
    ) -> Result<(), StoreError> {
        let database = &self.inner.database;
        let mut segments = self.lock();
        let framed = records.iter().enumerate().map(|(position, record)| {
            let position = u32::try_from(position).map_err(|_| StoreError::DamagedArchive {
                path: self.inner.folder.clone(),
                detail: format!("entry {log_index} finished more than {} records", u32::MAX),
            })?;
            let key = RecordKey {
                recorded_ms,
                log_index,
                position,
            };
            Ok((key, record))
        });
        self.write(
            &mut segments,
            framed.map(|item| item.and_then(|(key, record)| Ok((key, database.encode(record)?)))),
        )?;
        let horizon_ms = recorded_ms.saturating_sub(retention_ms);
        segments.retained_since_ms = segments.retained_since_ms.max(horizon_ms);
        self.prune(&mut segments)
    }

    /// Appends framed records in key order, skipping every key not after the last on disk.
    fn write(
        &self,
        segments: &mut Segments,
        records: impl Iterator<Item = Result<(RecordKey, Vec<u8>), StoreError>>,
    ) -> Result<(), StoreError> {
        let mut buffer = Vec::new();
        let mut last = segments.last_key();
        for item in records {
            let (key, payload) = item?;
            if last.is_some_and(|last| key <= last) {
                // Written before a restart: the log is being applied again.
                continue;
            }
            let frame_bytes = (segment::FRAME_HEADER_BYTES + payload.len()) as u64;
            let roll = match &segments.open {
                None => true,
                Some(open) => {
                    day_of(open.first) != day_of(key)
                        || open.bytes + buffer.len() as u64 + frame_bytes > segments.segment_bytes
                        // A segment never spans the boundary: a backfill rewrites the
                        // segments before it while appends go on after it.
                        || segments
                            .boundary
                            .is_some_and(|boundary| open.first < boundary && boundary <= key)
                }
            };
            if roll {
                if let Some(mut open) = segments.open.take() {
                    self.write_out(&mut open, &mut buffer, last)?;
                    // Durable before the next segment starts: only the newest can be torn.
                    open.file
                        .sync_data()
                        .map_err(io_error("sync", &path_of(&self.inner.folder, open.first)))?;
                }
                let path = path_of(&self.inner.folder, key);
                let file = OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_error("create", &path))?;
                segments.open = Some(OpenSegment {
                    first: key,
                    file,
                    bytes: 0,
                    last: None,
                });
                segments.firsts.push(key);
                segments.created_since_sync = true;
                buffer.extend_from_slice(&segment::HEADER);
            }
            encode_frame(&mut buffer, key, &payload).ok_or_else(|| StoreError::DamagedArchive {
                path: self.inner.folder.clone(),
                detail: format!(
                    "the record {key} is {} bytes encoded; a record is at most {} bytes",
                    payload.len(),
                    segment::MAX_PAYLOAD_BYTES
                ),
            })?;
            last = Some(key);
            if buffer.len() >= WRITE_BUFFER_BYTES {
                if let Some(open) = segments.open.as_mut() {
                    self.write_out(open, &mut buffer, last)?;
                }
            }
        }
        if let Some(open) = segments.open.as_mut() {
            self.write_out(open, &mut buffer, last)?;
        }
        Ok(())
    }

    /// Writes the gathered frames to the open segment in one write. A failed write is cut off
    /// again, so the segment holds only whole frames.
    fn write_out(
        &self,
        open: &mut OpenSegment,
        buffer: &mut Vec<u8>,
        last: Option<RecordKey>,
    ) -> Result<(), StoreError> {
        if buffer.is_empty() {
            return Ok(());
        }
        let path = path_of(&self.inner.folder, open.first);
        if let Err(error) = open.file.write_all(buffer) {
            if let Err(cut) = open.file.set_len(open.bytes) {
                tracing::error!(path = %path.display(), error = %cut, "can't cut a failed write off the record archive");
            }
            return Err(io_error("write", &path)(error));
        }
        open.bytes += buffer.len() as u64;
        open.last = last;
        buffer.clear();
        Ok(())
    }

    /// Deletes up to [`PRUNE_SEGMENTS_PER_APPEND`] segments whose whole day is before the
    /// retention's horizon; never the open one.
    fn prune(&self, segments: &mut Segments) -> Result<(), StoreError> {
        let horizon_ms = segments.retained_since_ms;
        let expired = segments
            .firsts
            .iter()
            .take(segments.firsts.len().saturating_sub(1))
            .take(PRUNE_SEGMENTS_PER_APPEND)
            .take_while(|first| (day_of(**first) + 1).saturating_mul(DAY_MS) <= horizon_ms)
            .count();
        for first in segments.firsts.drain(..expired) {
            let path = path_of(&self.inner.folder, first);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error("remove", &path)(error)),
            }
        }
        Ok(())
    }

    /// Records made before `since_ms` are past the retention: set at open and at a snapshot's
    /// install from the state's time, then by every append. Only moves later.
    pub(crate) fn retain_since(&self, since_ms: u64) {
        let mut segments = self.lock();
        segments.retained_since_ms = segments.retained_since_ms.max(since_ms);
    }

    /// The log time before which the retention keeps no record (as of the last append or
    /// snapshot): a backfill never needs anything older.
    pub fn retained_since_ms(&self) -> u64 {
        self.lock().retained_since_ms
    }

    /// Makes every record appended so far durable (and the folder, when a segment was
    /// created), then notes where the sync reached. Runs on a blocking thread.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        let archive = self.clone();
        match tokio::task::spawn_blocking(move || archive.sync_blocking()).await {
            Ok(result) => result,
            Err(join_error) => Err(StoreError::Io {
                action: "sync",
                path: self.inner.folder.clone(),
                source: io::Error::other(format!("the sync did not finish: {join_error}")),
            }),
        }
    }

    fn sync_blocking(&self) -> Result<(), StoreError> {
        let folder = &self.inner.folder;
        let (open, created) = {
            let mut segments = self.lock();
            let open = match &segments.open {
                Some(open) => Some((
                    open.file
                        .try_clone()
                        .map_err(io_error("sync", &path_of(folder, open.first)))?,
                    open.first,
                    open.bytes,
                )),
                None => None,
            };
            (open, std::mem::take(&mut segments.created_since_sync))
        };
        let synced = (|| {
            if let Some((file, first, _)) = &open {
                file.sync_data()
                    .map_err(io_error("sync", &path_of(folder, *first)))?;
            }
            if created {
                File::open(folder)
                    .and_then(|folder| folder.sync_all())
                    .map_err(io_error("sync", folder))?;
            }
            Ok(())
        })();
        if let Err(error) = synced {
            self.lock().created_since_sync |= created;
            return Err(error);
        }
        if let Some((_, first, bytes)) = open {
            let mark: SyncedMark = ((first.recorded_ms, first.log_index, first.position), bytes);
            let database = &self.inner.database;
            database
                .meta
                .insert(KEY_SYNCED, database.encode(&mark)?)
                .map_err(|source| StoreError::Database {
                    path: database.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Records made from `since_ms` (inclusive) to `until_ms` (exclusive), oldest first, read
    /// from disk as the iterator goes and only from the segments that can hold them. Each
    /// record is checked (frame checksum, then the value's checksum and seal) as it is read;
    /// damage is yielded as an error, after which the iterator ends.
    pub fn scan(
        &self,
        since_ms: u64,
        until_ms: u64,
    ) -> impl Iterator<Item = Result<ArchivedCdr, StoreError>> + Send + 'static {
        self.scan_from(since_ms, until_ms, true)
    }

    /// [`CdrArchive::scan`], but also returning records past this node's retention that are
    /// still on disk: what a peer backfilling its archive gets, because its own retention
    /// horizon may be a little behind this node's (its log time is).
    pub fn scan_kept(
        &self,
        since_ms: u64,
        until_ms: u64,
    ) -> impl Iterator<Item = Result<ArchivedCdr, StoreError>> + Send + 'static {
        self.scan_from(since_ms, until_ms, false)
    }

    fn scan_from(&self, since_ms: u64, until_ms: u64, retained_only: bool) -> Scan {
        let segments = self.lock();
        let retained_since_ms = if retained_only {
            segments.retained_since_ms
        } else {
            0
        };
        let start = RecordKey::at(since_ms.max(retained_since_ms));
        let end = RecordKey::at(until_ms);
        let mut wanted = VecDeque::new();
        if start < end {
            for (index, first) in segments.firsts.iter().enumerate() {
                let next = segments.firsts.get(index + 1).copied();
                // The segment holds keys from its first up to (not including) the next's, all
                // of one day.
                let day_end_ms = (day_of(*first) + 1).saturating_mul(DAY_MS);
                if *first >= end
                    || next.is_some_and(|next| next <= start)
                    || day_end_ms <= start.recorded_ms
                {
                    continue;
                }
                let readable = match &segments.open {
                    Some(open) if open.first == *first => Some(open.bytes),
                    _ => None,
                };
                wanted.push_back(Wanted {
                    first: *first,
                    next,
                    readable,
                });
            }
        }
        drop(segments);
        Scan {
            database: Arc::clone(&self.inner.database),
            folder: self.inner.folder.clone(),
            wanted,
            reading: None,
            start,
            end,
            done: false,
        }
    }

    /// The log time from which this node's archive holds every record (0: all of it).
    pub fn complete_since_ms(&self) -> Result<u64, StoreError> {
        let database = &self.inner.database;
        match database
            .meta
            .get(KEY_COMPLETE_SINCE)
            .map_err(|source| StoreError::Database {
                path: database.path.clone(),
                source,
            })? {
            None => Ok(0),
            Some(bytes) => database.decode(&bytes),
        }
    }

    /// Notes that this node installed a snapshot of entries it never applied, the last at
    /// `last_index` with log time `time_ms`: records made before `time_ms + 1` may be missing
    /// here, and every key from `(time_ms, last_index + 1, 0)` on (the boundary) is this
    /// node's own append. Both only ever move later.
    pub(crate) fn mark_incomplete(&self, time_ms: u64, last_index: u64) -> Result<(), StoreError> {
        let database = &self.inner.database;
        let mut segments = self.lock();
        let since_ms = time_ms.saturating_add(1).max(self.complete_since_ms()?);
        let boundary = RecordKey {
            recorded_ms: time_ms,
            log_index: last_index.saturating_add(1),
            position: 0,
        }
        .max(segments.boundary.unwrap_or(RecordKey::at(0)));
        let mut batch = sled::Batch::default();
        batch.insert(KEY_COMPLETE_SINCE, database.encode(&since_ms)?);
        batch.insert(KEY_BOUNDARY, database.encode(&boundary.to_tuple())?);
        database
            .meta
            .apply_batch(batch)
            .map_err(|source| StoreError::Database {
                path: database.path.clone(),
                source,
            })?;
        segments.boundary = Some(boundary);
        Ok(())
    }

    /// Moves `complete_since_ms` back to `since_ms` (a backfill made the archive whole from
    /// there), with the lock held. Durable when it returns.
    fn set_complete_since(&self, since_ms: u64) -> Result<(), StoreError> {
        let database = &self.inner.database;
        let sled_error = |source| StoreError::Database {
            path: database.path.clone(),
            source,
        };
        database
            .meta
            .insert(KEY_COMPLETE_SINCE, database.encode(&since_ms)?)
            .map_err(sled_error)?;
        database.flush_blocking().map_err(sled_error)?;
        Ok(())
    }

    /// Counts what a scan of everything returns: reads the whole archive. For tests.
    pub fn stats(&self) -> Result<ArchiveStats, StoreError> {
        let mut stats = ArchiveStats {
            complete_since_ms: self.complete_since_ms()?,
            ..ArchiveStats::default()
        };
        for item in self.scan(0, u64::MAX) {
            let item = item?;
            stats.oldest_ms.get_or_insert(item.recorded_ms);
            stats.records += 1;
        }
        Ok(stats)
    }

    /// Moves the records of a folder written before the archive left sled into segments,
    /// then empties the old tree. A crash half-way leaves the tree whole and the segments
    /// holding a prefix of it: the next open skips that prefix.
    fn migrate_from_sled(&self) -> Result<(), StoreError> {
        let database = &self.inner.database;
        let tree = &database.cdrs;
        if tree.is_empty() {
            return Ok(());
        }
        let sled_error = |source| StoreError::Database {
            path: database.path.clone(),
            source,
        };
        tracing::info!(
            records = tree.len(),
            "moving the call record archive out of sled into segment files"
        );
        let mut iter = tree.iter();
        let mut moved = 0u64;
        loop {
            let mut batch = Vec::with_capacity(MIGRATE_BATCH_RECORDS);
            for item in iter.by_ref().take(MIGRATE_BATCH_RECORDS) {
                let (key, value) = item.map_err(sled_error)?;
                let key: &[u8; segment::KEY_BYTES] =
                    key.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::DamagedArchive {
                            path: database.path.clone(),
                            detail: format!(
                                "a key of the old archive tree is {} bytes; keys are {}",
                                key.len(),
                                segment::KEY_BYTES
                            ),
                        })?;
                // The value is already what a frame carries: the database's encoding.
                batch.push(Ok((RecordKey::from_bytes(key), value.to_vec())));
            }
            if batch.is_empty() {
                break;
            }
            moved += batch.len() as u64;
            let mut segments = self.lock();
            self.write(&mut segments, batch.into_iter())?;
        }
        self.sync_blocking()?;
        tree.clear().map_err(sled_error)?;
        database.flush_blocking().map_err(sled_error)?;
        tracing::info!(
            records = moved,
            "the call record archive is in segment files"
        );
        Ok(())
    }

    /// Seals again with the current key every record sealed with another, a segment at a
    /// time, continuing `report` (the archive's records join its total as each segment is
    /// read). A segment is rewritten beside itself, synced, and renamed over itself; the
    /// segment being appended to is rewritten under the lock, so appends wait for it (one
    /// segment: at most [`SEGMENT_BYTES`]). Blocking.
    pub(crate) fn reseal(
        &self,
        report: &mut ResealProgress,
        progress: &mut impl FnMut(ResealProgress),
    ) -> Result<(), StoreError> {
        let Some(current) = self.inner.database.key_id() else {
            return Ok(());
        };
        let firsts = self.lock().firsts.clone();
        for first in firsts {
            let is_open = |segments: &Segments| {
                segments
                    .open
                    .as_ref()
                    .is_some_and(|open| open.first == first)
            };
            // A backfill's swap must not replace this segment while it is rewritten.
            let _rewriting = self.lock_rewrites();
            let mut segments = self.lock();
            if !segments.firsts.contains(&first) {
                continue; // Deleted by the retention meanwhile.
            }
            if is_open(&segments) {
                self.reseal_segment(first, current, Some(&mut segments), report, progress)?;
            } else {
                drop(segments);
                self.reseal_segment(first, current, None, report, progress)?;
            }
        }
        Ok(())
    }

    /// Re-seals one segment; `open`: the locked state, when it is the one appended to.
    fn reseal_segment(
        &self,
        first: RecordKey,
        current: u32,
        open: Option<&mut Segments>,
        report: &mut ResealProgress,
        progress: &mut impl FnMut(ResealProgress),
    ) -> Result<(), StoreError> {
        let database = &self.inner.database;
        let path = path_of(&self.inner.folder, first);
        let readable = open
            .as_deref()
            .and_then(|segments| segments.open.as_ref())
            .map(|segment| segment.bytes);
        let damaged = |error: FrameError| StoreError::DamagedArchive {
            path: path.clone(),
            detail: error.to_string(),
        };
        let stale =
            |payload: &[u8]| crate::seal::key_id_of(payload).is_some_and(|id| id != current);
        // First, read only: most segments of a folder rotated before need nothing.
        let mut frames = 0u64;
        let mut needs_reseal = false;
        let mut reader = match FrameReader::open(&path, first, readable) {
            Err(FrameError::Io(error)) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other.map_err(damaged)?,
        };
        while let Some(frame) = reader.next_frame() {
            let (_, payload) = frame.map_err(damaged)?;
            frames += 1;
            needs_reseal |= stale(&payload);
        }
        report.total += frames;
        if !needs_reseal {
            report.examined += frames;
            progress(*report);
            return Ok(());
        }
        let temporary = path.with_extension(format!("seg{TEMPORARY_SUFFIX}"));
        let mut file = File::create(&temporary).map_err(io_error("create", &temporary))?;
        let mut buffer = segment::HEADER.to_vec();
        let mut reader = FrameReader::open(&path, first, readable).map_err(damaged)?;
        while let Some(frame) = reader.next_frame() {
            let (key, payload) = frame.map_err(damaged)?;
            report.examined += 1;
            let payload = if stale(&payload) {
                report.resealed += 1;
                database.seal(database.unseal(&payload)?.into_owned())?
            } else {
                payload
            };
            encode_frame(&mut buffer, key, &payload).ok_or_else(|| StoreError::DamagedArchive {
                path: path.clone(),
                detail: format!("the record {key} is too large once sealed again"),
            })?;
            if buffer.len() >= WRITE_BUFFER_BYTES {
                file.write_all(&buffer)
                    .map_err(io_error("write", &temporary))?;
                buffer.clear();
            }
            if report.examined.is_multiple_of(RESEAL_PROGRESS_EVERY) {
                progress(*report);
            }
        }
        file.write_all(&buffer)
            .and_then(|()| file.sync_data())
            .map_err(io_error("write", &temporary))?;
        drop(file);
        let mut locked;
        let segments = match open {
            Some(segments) => segments,
            None => {
                locked = self.lock();
                &mut *locked
            }
        };
        if !segments.firsts.contains(&first) {
            // Deleted by the retention while it was rewritten.
            return fs::remove_file(&temporary).map_err(io_error("remove", &temporary));
        }
        fs::rename(&temporary, &path).map_err(io_error("rename", &temporary))?;
        File::open(&self.inner.folder)
            .and_then(|folder| folder.sync_all())
            .map_err(io_error("sync", &self.inner.folder))?;
        if let Some(segment) = segments.open.as_mut().filter(|open| open.first == first) {
            // The old file is gone: append to the new one.
            segment.file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_error("open", &path))?;
            segment.bytes = segment
                .file
                .metadata()
                .map_err(io_error("read", &path))?
                .len();
        }
        progress(*report);
        Ok(())
    }

    #[cfg(test)]
    fn set_segment_bytes(&self, bytes: u64) {
        self.lock().segment_bytes = bytes;
    }

    #[cfg(test)]
    fn folder(&self) -> &Path {
        &self.inner.folder
    }
}

fn read_boundary(database: &Database) -> Result<Option<RecordKey>, StoreError> {
    let bytes = database
        .meta
        .get(KEY_BOUNDARY)
        .map_err(|source| StoreError::Database {
            path: database.path.clone(),
            source,
        })?;
    let tuple: Option<(u64, u64, u32)> = bytes.map(|bytes| database.decode(&bytes)).transpose()?;
    Ok(tuple.map(RecordKey::from_tuple))
}

fn read_synced_mark(database: &Database) -> Result<Option<SyncedMark>, StoreError> {
    let bytes = database
        .meta
        .get(KEY_SYNCED)
        .map_err(|source| StoreError::Database {
            path: database.path.clone(),
            source,
        })?;
    bytes.map(|bytes| database.decode(&bytes)).transpose()
}

/// Opens the newest segment for appending, after cutting off a tail a crash tore (and
/// removing a newest segment a crash left without a whole record). Damage before where the
/// last sync reached is not a torn tail: the folder is damaged.
fn open_newest(
    database: &Database,
    folder: &Path,
    firsts: &mut Vec<RecordKey>,
    synced: Option<SyncedMark>,
) -> Result<Option<OpenSegment>, StoreError> {
    while let Some(&first) = firsts.last() {
        let path = path_of(folder, first);
        let synced_bytes = synced
            .filter(|((time, index, position), _)| {
                RecordKey {
                    recorded_ms: *time,
                    log_index: *index,
                    position: *position,
                } == first
            })
            .map_or(0, |(_, bytes)| bytes);
        let damaged = |detail: String| StoreError::Corrupt {
            path: database.path.clone(),
            detail: format!(
                "the call record archive's newest segment {} {detail}, before where it was \
                 last synced (byte {synced_bytes}); move that file aside to start without its \
                 records",
                path.display()
            ),
        };
        let mut whole = 0u64;
        let mut last = None;
        let mut fault = None;
        match FrameReader::open(&path, first, None) {
            Err(FrameError::Io(source)) => return Err(io_error("read", &path)(source)),
            Err(error) => fault = Some(error),
            Ok(mut reader) => {
                whole = reader.offset();
                while let Some(frame) = reader.next_frame() {
                    match frame {
                        Ok((key, _)) => {
                            last = Some(key);
                            whole = reader.offset();
                        }
                        Err(FrameError::Io(source)) => return Err(io_error("read", &path)(source)),
                        Err(error) => {
                            fault = Some(error);
                            break;
                        }
                    }
                }
            }
        }
        if let Some(fault) = &fault {
            if whole < synced_bytes {
                return Err(damaged(fault.to_string()));
            }
            tracing::warn!(
                path = %path.display(),
                kept_bytes = whole,
                %fault,
                "cutting a torn tail off the call record archive; the log applied again writes it again"
            );
        }
        if last.is_none() {
            if synced_bytes > 0 {
                return Err(damaged("holds no whole record".to_owned()));
            }
            fs::remove_file(&path).map_err(io_error("remove", &path))?;
            firsts.pop();
            continue;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        if fault.is_some() {
            file.set_len(whole)
                .and_then(|()| file.sync_data())
                .map_err(io_error("cut", &path))?;
        }
        return Ok(Some(OpenSegment {
            first,
            file,
            bytes: whole,
            last,
        }));
    }
    Ok(None)
}

/// A segment a scan will read.
struct Wanted {
    first: RecordKey,
    /// The next segment's first key: every key here is before it.
    next: Option<RecordKey>,
    /// For the segment being appended to: the bytes whole when the scan began.
    readable: Option<u64>,
}

struct Scan {
    database: Arc<Database>,
    folder: PathBuf,
    wanted: VecDeque<Wanted>,
    reading: Option<(FrameReader, PathBuf, Option<RecordKey>)>,
    start: RecordKey,
    end: RecordKey,
    /// Set at the end of the range or after damage.
    done: bool,
}

impl Scan {
    fn damaged(&mut self, path: &Path, error: &FrameError) -> StoreError {
        self.done = true;
        StoreError::DamagedArchive {
            path: path.to_owned(),
            detail: error.to_string(),
        }
    }
}

impl Iterator for Scan {
    type Item = Result<ArchivedCdr, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let Some((reader, path, next)) = &mut self.reading else {
                let Some(wanted) = self.wanted.pop_front() else {
                    self.done = true;
                    return None;
                };
                let path = path_of(&self.folder, wanted.first);
                match FrameReader::open(&path, wanted.first, wanted.readable) {
                    Ok(reader) => self.reading = Some((reader, path, wanted.next)),
                    // Deleted by the retention since the scan began: expired records.
                    Err(FrameError::Io(error)) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Some(Err(self.damaged(&path, &error))),
                }
                continue;
            };
            let (key, payload) = match reader.next_frame() {
                None => {
                    self.reading = None;
                    continue;
                }
                Some(Err(error)) => {
                    let path = path.clone();
                    return Some(Err(self.damaged(&path, &error)));
                }
                Some(Ok(frame)) => frame,
            };
            if next.is_some_and(|next| key >= next) {
                let error = FrameError::OutOfOrder {
                    offset: reader.offset(),
                    key,
                };
                let path = path.clone();
                return Some(Err(self.damaged(&path, &error)));
            }
            if key < self.start {
                continue;
            }
            if key >= self.end {
                self.done = true;
                return None;
            }
            return Some(
                self.database
                    .decode(&payload)
                    .map(|cdr| ArchivedCdr {
                        recorded_ms: key.recorded_ms,
                        log_index: key.log_index,
                        position: key.position,
                        cdr,
                    })
                    .map_err(|error| StoreError::DamagedArchive {
                        path: path.clone(),
                        detail: format!("the record {key} is unreadable ({error})"),
                    }),
            );
        }
    }
}
