//! The acknowledged record: what this node has promised the cluster, kept outside sled.
//!
//! sled 0.34 can lose recent writes after damage (a flipped byte, a truncated or deleted
//! file) and start anyway, with at most a warning. A Raft node that forgets its vote may vote
//! twice in one term, and one that forgets log entries it acknowledged may lose entries a
//! quorum counted on: both break Raft's safety, and both look like "nothing was there" from
//! inside sled. So the store keeps its own small, independent record of the last vote it
//! saved, the last log id it flushed and the last snapshot it stored, written after sled has
//! made them durable and before they are acknowledged. At open, sled must hold at least what
//! this record says ([`verify`](crate::verify)); if it doesn't, the folder is damaged and the
//! node refuses to start.
//!
//! The file is two fixed-size slots written in turn, each with a magic, a sequence number, the
//! record and a CRC-32 over all of it, synced (`fdatasync`) after each write. A write torn by
//! a crash damages only the slot being written; the other still holds the previous record.
//! Reading takes the valid slot with the higher sequence number. Because the record is written
//! after sled's flush, sled is never behind a record that survived, except by damage.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use openraft::{LogId, Vote};
use serde::{Deserialize, Serialize};

use crate::folder::io_error;
use crate::{codec, NodeId, StoreError};

/// The record's file, in the data folder beside the database.
pub(crate) const ACKNOWLEDGED_FILE: &str = "trunkline-acknowledged";
/// Where a new record file is prepared before it is renamed into place.
const ACKNOWLEDGED_TEMP_FILE: &str = ".trunkline-acknowledged.tmp";
/// Bytes of one slot; the record is a few dozen bytes.
const SLOT_BYTES: usize = 512;
/// Opens every valid slot; a slot of zeros (never written) or of anything else is invalid.
const MAGIC: &[u8; 8] = b"TLACK\x00\x00\x01";
/// Magic, sequence number and payload length, before the payload.
const HEADER_BYTES: usize = 8 + 8 + 4;
/// The CRC-32 at the end of a slot.
const CHECKSUM_BYTES: usize = 4;
/// The longest payload a slot holds.
const MAX_PAYLOAD_BYTES: usize = SLOT_BYTES - HEADER_BYTES - CHECKSUM_BYTES;

/// What the node has acknowledged; sled must hold at least this.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    /// The last vote saved (flushed before `save_vote` returned).
    pub vote: Option<Vote<NodeId>>,
    /// The last log entry flushed by an append, or what a truncation left last.
    pub last_log_id: Option<LogId<NodeId>>,
    /// The last log id covered by the newest snapshot stored.
    pub snapshot: Option<LogId<NodeId>>,
}

/// The open record file. Writes block: call them on a blocking thread.
#[derive(Debug)]
pub(crate) struct AcknowledgedFile {
    path: PathBuf,
    file: File,
    /// Sequence number of the newest valid slot; the next write uses the next one.
    sequence: u64,
    record: Acknowledged,
}

impl AcknowledgedFile {
    /// Creates the record file of a new data folder, holding an empty record: prepared under a
    /// temporary name, synced, renamed into place, and the folder synced.
    pub(crate) fn create(folder: &Path) -> Result<(), StoreError> {
        let temp_path = folder.join(ACKNOWLEDGED_TEMP_FILE);
        let file = File::create(&temp_path).map_err(io_error("create", &temp_path))?;
        let slot = encode_slot(1, &Acknowledged::default())?;
        file.write_all_at(&slot, 0)
            .and_then(|()| file.write_all_at(&[0; SLOT_BYTES], SLOT_BYTES as u64))
            .and_then(|()| file.sync_all())
            .map_err(io_error("write", &temp_path))?;
        let path = folder.join(ACKNOWLEDGED_FILE);
        fs::rename(&temp_path, &path).map_err(io_error("create", &path))?;
        File::open(folder)
            .and_then(|folder| folder.sync_all())
            .map_err(io_error("sync", folder))
    }

    /// Opens the record of a data folder; `None` when the file does not exist.
    pub(crate) fn open(folder: &Path) -> Result<Option<AcknowledgedFile>, StoreError> {
        let path = folder.join(ACKNOWLEDGED_FILE);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("open", &path)(error)),
        };
        let (sequence, record) = read_newest(&file, &path, folder)?;
        Ok(Some(AcknowledgedFile {
            path,
            file,
            sequence,
            record,
        }))
    }

    pub(crate) fn record(&self) -> &Acknowledged {
        &self.record
    }

    /// Writes `record` into the older slot and syncs it; only then does it become the record.
    pub(crate) fn write(&mut self, record: Acknowledged) -> Result<(), StoreError> {
        let sequence = self.sequence.wrapping_add(1);
        let slot = encode_slot(sequence, &record)?;
        let offset = (sequence % 2) * SLOT_BYTES as u64;
        self.file
            .write_all_at(&slot, offset)
            .and_then(|()| self.file.sync_data())
            .map_err(io_error("write", &self.path))?;
        self.sequence = sequence;
        self.record = record;
        Ok(())
    }
}

/// Reads the record without keeping the file open: what `trunkline recover` salvages.
pub fn read_acknowledged(folder: &Path) -> Result<Option<Acknowledged>, StoreError> {
    let path = folder.join(ACKNOWLEDGED_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("open", &path)(error)),
    };
    read_newest(&file, &path, folder).map(|(_, record)| Some(record))
}

fn read_newest(file: &File, path: &Path, folder: &Path) -> Result<(u64, Acknowledged), StoreError> {
    let mut newest: Option<(u64, Acknowledged)> = None;
    for slot_index in 0..2u64 {
        let mut slot = [0u8; SLOT_BYTES];
        match file.read_exact_at(&mut slot, slot_index * SLOT_BYTES as u64) {
            Ok(()) => {}
            // A short file: this slot (and any after it) was never written whole.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => continue,
            Err(error) => return Err(io_error("read", path)(error)),
        }
        if let Some((sequence, record)) = decode_slot(&slot) {
            if newest.as_ref().is_none_or(|(best, _)| sequence > *best) {
                newest = Some((sequence, record));
            }
        }
    }
    newest.ok_or_else(|| StoreError::Corrupt {
        path: folder.to_owned(),
        detail: format!(
            "{ACKNOWLEDGED_FILE} (the record of what this node acknowledged) has no readable \
             copy, so the node can't tell whether its database lost acknowledged writes"
        ),
    })
}

fn encode_slot(sequence: u64, record: &Acknowledged) -> Result<[u8; SLOT_BYTES], StoreError> {
    let payload = codec::encode(record)?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(StoreError::Encode(Box::new(bincode::ErrorKind::Custom(
            format!(
                "the acknowledged record is {} bytes; a slot holds {MAX_PAYLOAD_BYTES}",
                payload.len()
            ),
        ))));
    }
    let mut slot = [0u8; SLOT_BYTES];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..16].copy_from_slice(&sequence.to_le_bytes());
    // Fits: checked against MAX_PAYLOAD_BYTES, which is far below u32::MAX.
    slot[16..20].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    slot[HEADER_BYTES..HEADER_BYTES + payload.len()].copy_from_slice(&payload);
    let checksum = crc32fast::hash(&slot[..SLOT_BYTES - CHECKSUM_BYTES]);
    slot[SLOT_BYTES - CHECKSUM_BYTES..].copy_from_slice(&checksum.to_le_bytes());
    Ok(slot)
}

/// A slot's sequence number and record, or `None` when it is not a whole, valid slot.
fn decode_slot(slot: &[u8; SLOT_BYTES]) -> Option<(u64, Acknowledged)> {
    let (body, stored) = slot.split_at(SLOT_BYTES - CHECKSUM_BYTES);
    if crc32fast::hash(body).to_le_bytes() != stored || &body[..8] != MAGIC {
        return None;
    }
    let sequence = u64::from_le_bytes(body[8..16].try_into().ok()?);
    let length = u32::from_le_bytes(body[16..20].try_into().ok()?) as usize;
    let payload = body.get(HEADER_BYTES..HEADER_BYTES.checked_add(length)?)?;
    let record = codec::decode(payload).ok()?;
    Some((sequence, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::log_id;

    fn record(term: u64, index: u64) -> Acknowledged {
        Acknowledged {
            vote: Some(Vote::new_committed(term, 1)),
            last_log_id: Some(log_id(term, 1, index)),
            snapshot: None,
        }
    }

    #[test]
    fn the_newest_write_is_read_back_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        AcknowledgedFile::create(dir.path()).unwrap();
        let mut file = AcknowledgedFile::open(dir.path()).unwrap().unwrap();
        assert_eq!(file.record(), &Acknowledged::default());
        for index in 1..=5 {
            file.write(record(2, index)).unwrap();
        }
        drop(file);
        let file = AcknowledgedFile::open(dir.path()).unwrap().unwrap();
        assert_eq!(file.record(), &record(2, 5));
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_previous_record() {
        let dir = tempfile::tempdir().unwrap();
        AcknowledgedFile::create(dir.path()).unwrap();
        let mut file = AcknowledgedFile::open(dir.path()).unwrap().unwrap();
        file.write(record(3, 10)).unwrap();
        file.write(record(3, 11)).unwrap();
        let torn_slot = (file.sequence % 2) * SLOT_BYTES as u64;
        drop(file);
        let raw = OpenOptions::new()
            .write(true)
            .open(dir.path().join(ACKNOWLEDGED_FILE))
            .unwrap();
        raw.write_all_at(&[0xff; 40], torn_slot + 8).unwrap();
        let file = AcknowledgedFile::open(dir.path()).unwrap().unwrap();
        assert_eq!(file.record(), &record(3, 10));
    }

    #[test]
    fn no_readable_slot_is_damage_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(AcknowledgedFile::open(dir.path()).unwrap().is_none());
        fs::write(dir.path().join(ACKNOWLEDGED_FILE), [7u8; 2 * SLOT_BYTES]).unwrap();
        let error = AcknowledgedFile::open(dir.path()).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
        fs::write(dir.path().join(ACKNOWLEDGED_FILE), b"").unwrap();
        assert!(AcknowledgedFile::open(dir.path()).is_err());
    }
}
