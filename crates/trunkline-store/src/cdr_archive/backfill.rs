//! Taking in the records a node missed because it installed a snapshot: a [`Backfill`].
//!
//! The node fetches from a peer the records made from `since_ms` up to its own
//! `complete_since_ms`, oldest first, and hands them to [`Backfill::add`]. Whatever the archive
//! already holds before the boundary (see the module above: keys before it may be missing,
//! keys from it on are this node's own appends) is a subset of the same keys. So the backfill
//! merges, in key order, every record of the local segments that can hold keys in the range
//! (the *replaced* segments, read as they are, sealed bytes and all) with the fetched records
//! (sealed here with this node's key; a local copy of a key wins) into *staged* segment files
//! beside the others, named `….seg.backfill.tmp`. Nothing else changes while it runs: appends
//! go on after the boundary, in other segments.
//!
//! [`Backfill::finish`] syncs the staged files, then under the archive's lock checks that no
//! snapshot was installed meanwhile, deletes the replaced segments (folder synced), renames the
//! staged ones in (folder synced), and only then moves `complete_since_ms` back (flushed). A
//! crash at any point leaves a readable archive whose `complete_since_ms` is still true: staged
//! files are removed at open; a crash after the deletes loses only records from before the
//! boundary, which `complete_since_ms` does not claim yet, and the next backfill fetches them
//! again. The lock is held for the swap only: deletes and renames, never the copying.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::segment::{self, day_of, encode_frame, path_of, FrameError, FrameReader, RecordKey};
use super::{ArchivedCdr, CdrArchive, WRITE_BUFFER_BYTES};
use crate::folder::io_error;
use crate::StoreError;

/// The ending of a staged segment's file name (it ends with `.tmp`, so `open` removes it).
const STAGED_SUFFIX: &str = ".backfill.tmp";

/// What a finished backfill did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackfillOutcome {
    /// Records taken from the peer that the archive lacked.
    pub records_added: u64,
    /// Whether the staged segments went in. `false`: a snapshot was installed meanwhile, and
    /// the backfill must start over for the new range.
    pub swapped: bool,
    /// The archive's `complete_since_ms` now.
    pub complete_since_ms: u64,
}

/// Records from a peer on their way into the archive. At most one at a time; dropping it
/// unfinished removes what it staged. Every method does blocking file I/O.
pub struct Backfill {
    archive: CdrArchive,
    since_ms: u64,
    since: RecordKey,
    /// The archive's `complete_since_ms` when the backfill began: what it can move back.
    until_ms: u64,
    /// The boundary when the backfill began.
    boundary: RecordKey,
    /// Fetched keys from here on are not taken: the archive already holds them (they are at
    /// or after the boundary) or they were not asked for (at or after `until_ms`).
    end: RecordKey,
    /// The local segments the staged ones replace, oldest first.
    replaced: Vec<RecordKey>,
    local: LocalFrames,
    /// The staged segments written, oldest first (the last one may be `writing`).
    staged: Vec<RecordKey>,
    writing: Option<StagedSegment>,
    segment_bytes: u64,
    /// The last key staged: keys must rise.
    last_staged: Option<RecordKey>,
    /// The last key given to [`Backfill::add`]: fetched keys must rise too.
    last_fetched: Option<RecordKey>,
    records_added: u64,
    /// The swap is done: nothing staged is left to remove.
    finished: bool,
}

struct StagedSegment {
    first: RecordKey,
    file: File,
    /// Bytes written and buffered.
    bytes: u64,
    buffer: Vec<u8>,
}

/// The frames of the replaced segments, in order, read as the merge goes.
struct LocalFrames {
    folder: PathBuf,
    /// Segments left to read: first key, and the bytes whole when the backfill began for the
    /// segment being appended to.
    wanted: VecDeque<(RecordKey, Option<u64>)>,
    reading: Option<(FrameReader, PathBuf)>,
    peeked: Option<(RecordKey, Vec<u8>)>,
}

impl LocalFrames {
    /// The next local frame's key, reading it if needed.
    fn peek(&mut self) -> Result<Option<RecordKey>, StoreError> {
        loop {
            if let Some((key, _)) = &self.peeked {
                return Ok(Some(*key));
            }
            let Some((reader, path)) = &mut self.reading else {
                let Some((first, readable)) = self.wanted.pop_front() else {
                    return Ok(None);
                };
                let path = path_of(&self.folder, first);
                match FrameReader::open(&path, first, readable) {
                    Ok(reader) => self.reading = Some((reader, path)),
                    // Deleted by the retention since the backfill began: expired records.
                    Err(FrameError::Io(error)) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(damaged(&path, &error)),
                }
                continue;
            };
            match reader.next_frame() {
                None => self.reading = None,
                Some(Err(error)) => return Err(damaged(path, &error)),
                Some(Ok(frame)) => self.peeked = Some(frame),
            }
        }
    }

    fn take(&mut self) -> Option<(RecordKey, Vec<u8>)> {
        self.peeked.take()
    }
}

fn damaged(path: &Path, error: &FrameError) -> StoreError {
    StoreError::DamagedArchive {
        path: path.to_owned(),
        detail: error.to_string(),
    }
}

fn staged_path(folder: &Path, first: RecordKey) -> PathBuf {
    folder.join(format!("{}{STAGED_SUFFIX}", first.file_name()))
}

fn sync_folder(folder: &Path) -> Result<(), StoreError> {
    File::open(folder)
        .and_then(|folder| folder.sync_all())
        .map_err(io_error("sync", folder))
}

impl CdrArchive {
    /// Starts taking in the records made from `since_ms` up to this archive's
    /// `complete_since_ms` ([`Backfill::until_ms`]). `None` when there is nothing to take
    /// (the archive is whole from `since_ms`) or the archive can't say which of its keys are
    /// its own appends (its snapshot was installed before the boundary was kept). Fails when
    /// another backfill is under way.
    pub fn begin_backfill(&self, since_ms: u64) -> Result<Option<Backfill>, StoreError> {
        let segments = self.lock();
        let until_ms = self.complete_since_ms()?;
        let Some(boundary) = segments.boundary else {
            return Ok(None);
        };
        if since_ms >= until_ms {
            return Ok(None);
        }
        if self.inner.backfilling.swap(true, Ordering::AcqRel) {
            return Err(StoreError::Backfill {
                detail: "another backfill is under way".to_owned(),
            });
        }
        let since = RecordKey::at(since_ms);
        let end = boundary.min(RecordKey::at(until_ms));
        let mut replaced = Vec::new();
        let mut wanted = VecDeque::new();
        for (index, first) in segments.firsts.iter().enumerate() {
            if *first >= end {
                break;
            }
            let next = segments.firsts.get(index + 1);
            if next.is_some_and(|next| *next <= since) {
                continue;
            }
            let readable = match &segments.open {
                Some(open) if open.first == *first => Some(open.bytes),
                _ => None,
            };
            replaced.push(*first);
            wanted.push_back((*first, readable));
        }
        let segment_bytes = segments.segment_bytes;
        drop(segments);
        Ok(Some(Backfill {
            archive: self.clone(),
            since_ms,
            since,
            until_ms,
            boundary,
            end,
            replaced,
            local: LocalFrames {
                folder: self.inner.folder.clone(),
                wanted,
                reading: None,
                peeked: None,
            },
            staged: Vec::new(),
            writing: None,
            segment_bytes,
            last_staged: None,
            last_fetched: None,
            records_added: 0,
            finished: false,
        }))
    }
}

impl Backfill {
    /// The log time the fetched records go up to (exclusive): the archive's
    /// `complete_since_ms` when the backfill began.
    pub fn until_ms(&self) -> u64 {
        self.until_ms
    }

    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// The key of the last record given to [`Backfill::add`]: a fetch resumes after it.
    pub fn last_fetched(&self) -> Option<(u64, u64, u32)> {
        self.last_fetched.map(RecordKey::to_tuple)
    }

    /// Records taken from the peer so far that the archive lacked.
    pub fn records_added(&self) -> u64 {
        self.records_added
    }

    /// Takes fetched records, oldest first, each after the one before and none before
    /// `since_ms`; a record the archive already holds (or at or after the boundary) is
    /// skipped. A record out of order is refused, and the backfill can't go on.
    pub fn add(
        &mut self,
        records: impl IntoIterator<Item = ArchivedCdr>,
    ) -> Result<(), StoreError> {
        for record in records {
            let key = RecordKey {
                recorded_ms: record.recorded_ms,
                log_index: record.log_index,
                position: record.position,
            };
            if key < self.since || self.last_fetched.is_some_and(|last| key <= last) {
                return Err(StoreError::Backfill {
                    detail: format!(
                        "the record {key} comes after {} and is not after it, or before the \
                         start of the range (log time {} ms)",
                        self.last_fetched
                            .map_or_else(|| "nothing".to_owned(), |last| last.to_string()),
                        self.since_ms
                    ),
                });
            }
            self.last_fetched = Some(key);
            if key >= self.end {
                continue;
            }
            let mut held_here = false;
            while let Some(local) = self.local.peek()? {
                if local > key {
                    break;
                }
                held_here |= local == key;
                if let Some((local, payload)) = self.local.take() {
                    self.stage(local, &payload)?;
                }
            }
            if !held_here {
                let payload = self.archive.inner.database.encode(&record.cdr)?;
                self.stage(key, &payload)?;
                self.records_added += 1;
            }
        }
        Ok(())
    }

    /// Appends one frame to the staged segments, starting a new one by day and size.
    fn stage(&mut self, key: RecordKey, payload: &[u8]) -> Result<(), StoreError> {
        let archive = self.archive.clone();
        let folder = &archive.inner.folder;
        if self.last_staged.is_some_and(|last| key <= last) || key >= self.boundary {
            // Only a damaged local segment (keys overlapping the next one's) can get here.
            return Err(StoreError::DamagedArchive {
                path: folder.clone(),
                detail: format!(
                    "the record {key} is out of order among the segments before {}",
                    self.boundary
                ),
            });
        }
        let frame_bytes = (segment::FRAME_HEADER_BYTES + payload.len()) as u64;
        let roll = self.writing.as_ref().is_none_or(|writing| {
            day_of(writing.first) != day_of(key) || writing.bytes + frame_bytes > self.segment_bytes
        });
        if roll {
            self.close_staged()?;
            let path = staged_path(folder, key);
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(io_error("create", &path))?;
            self.staged.push(key);
            self.writing = Some(StagedSegment {
                first: key,
                file,
                bytes: segment::HEADER.len() as u64,
                buffer: segment::HEADER.to_vec(),
            });
        }
        let Some(writing) = self.writing.as_mut() else {
            // Set just above when there was none.
            return Ok(());
        };
        encode_frame(&mut writing.buffer, key, payload).ok_or_else(|| {
            StoreError::DamagedArchive {
                path: folder.clone(),
                detail: format!(
                    "the record {key} is {} bytes encoded; a record is at most {} bytes",
                    payload.len(),
                    segment::MAX_PAYLOAD_BYTES
                ),
            }
        })?;
        writing.bytes += frame_bytes;
        self.last_staged = Some(key);
        if writing.buffer.len() >= WRITE_BUFFER_BYTES {
            let path = staged_path(folder, writing.first);
            writing
                .file
                .write_all(&writing.buffer)
                .map_err(io_error("write", &path))?;
            writing.buffer.clear();
        }
        Ok(())
    }

    /// Writes out and syncs the staged segment being written.
    fn close_staged(&mut self) -> Result<(), StoreError> {
        if let Some(mut writing) = self.writing.take() {
            let path = staged_path(&self.archive.inner.folder, writing.first);
            writing
                .file
                .write_all(&writing.buffer)
                .and_then(|()| writing.file.sync_data())
                .map_err(io_error("write", &path))?;
        }
        Ok(())
    }

    /// Ends the backfill: the rest of the replaced segments are staged, the staged segments
    /// replace them, and `complete_since_ms` moves back to `covered_since_ms` (or
    /// `since_ms`, whichever is later; to 0 when that is past the retention), which the
    /// caller vouches for: from there up to `until_ms` every record was given to
    /// [`Backfill::add`].
    pub fn finish(mut self, covered_since_ms: u64) -> Result<BackfillOutcome, StoreError> {
        while self.local.peek()?.is_some() {
            if let Some((key, payload)) = self.local.take() {
                self.stage(key, &payload)?;
            }
        }
        self.close_staged()?;
        let archive = self.archive.clone();
        let folder = archive.inner.folder.clone();
        sync_folder(&folder)?;

        let _rewriting = archive.lock_rewrites();
        let mut segments = archive.lock();
        let complete_since_ms = archive.complete_since_ms()?;
        if complete_since_ms != self.until_ms || segments.boundary != Some(self.boundary) {
            // A snapshot was installed meanwhile: the range is another one now.
            return Ok(BackfillOutcome {
                records_added: 0,
                swapped: false,
                complete_since_ms,
            });
        }
        // Memory follows the disk step by step, so a failure half-way leaves them agreeing.
        for first in std::mem::take(&mut self.replaced) {
            if segments
                .open
                .as_ref()
                .is_some_and(|open| open.first == first)
            {
                // The next append starts a new segment (it is past the boundary anyway).
                segments.open = None;
            }
            let path = path_of(&folder, first);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error("remove", &path)(error)),
            }
            segments.firsts.retain(|kept| *kept != first);
        }
        // Durable before a staged segment appears: the two must never overlap on disk.
        sync_folder(&folder)?;
        while let Some(first) = self.staged.first().copied() {
            let staged = staged_path(&folder, first);
            fs::rename(&staged, path_of(&folder, first)).map_err(io_error("rename", &staged))?;
            self.staged.remove(0);
            let at = segments.firsts.partition_point(|kept| *kept < first);
            segments.firsts.insert(at, first);
        }
        sync_folder(&folder)?;
        self.finished = true;

        let claimed_ms = covered_since_ms.max(self.since_ms);
        // Past the retention nothing is ever returned: whole from there is whole.
        let whole_since_ms = if claimed_ms <= segments.retained_since_ms {
            0
        } else {
            claimed_ms
        };
        let complete_since_ms = if whole_since_ms < complete_since_ms {
            archive.set_complete_since(whole_since_ms)?;
            whole_since_ms
        } else {
            complete_since_ms
        };
        Ok(BackfillOutcome {
            records_added: self.records_added,
            swapped: true,
            complete_since_ms,
        })
    }
}

impl Drop for Backfill {
    fn drop(&mut self) {
        if !self.finished {
            self.writing = None;
            for first in &self.staged {
                let path = staged_path(&self.archive.inner.folder, *first);
                if let Err(error) = fs::remove_file(&path) {
                    if error.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), %error, "can't remove a staged segment of an abandoned backfill; it is removed at the next start");
                    }
                }
            }
        }
        self.archive
            .inner
            .backfilling
            .store(false, Ordering::Release);
    }
}
