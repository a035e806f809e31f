//! One segment file of the call record archive: its name, its header, and the frames it holds.
//!
//! A segment is named by the key of its first record (`{log time ms}-{log index}-{position}`,
//! zero-padded decimal, so the names sort like the keys) with [`SEGMENT_SUFFIX`], and holds the
//! records of one day of log time, in key order. It starts with [`HEADER`] (a magic and a
//! format version), then frames:
//!
//! ```text
//! payload length   u32 little-endian, 1 ..= MAX_PAYLOAD_BYTES
//! key              20 bytes: log time ms u64, log index u64, position u32, big-endian
//! checksum         u32 little-endian: CRC-32 of the length, the key and the payload
//! payload          the record as the database encodes a value (checksummed, sealed with keys)
//! ```
//!
//! A reader trusts no length it has not bounded: a length over [`MAX_PAYLOAD_BYTES`], or one
//! that runs past the bytes the segment is known to hold, is damage, reported before anything
//! is allocated for it.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// First bytes of every segment: a magic and the format version (1).
pub(crate) const HEADER: [u8; 8] = *b"TKLCDR\x00\x01";
/// Bytes before a frame's payload: its length, its key and its checksum.
pub(crate) const FRAME_HEADER_BYTES: usize = 4 + KEY_BYTES + 4;
/// Bytes of a key.
pub(crate) const KEY_BYTES: usize = 8 + 8 + 4;
/// Largest payload a frame may hold. A record is a few hundred bytes (at most
/// `trunkline_core::cdr::MAX_LEGS` legs); anything near this bound is damage.
pub(crate) const MAX_PAYLOAD_BYTES: u32 = 1 << 20;
/// The ending of a segment's file name.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// Bytes read from disk at a time while scanning a segment.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Where a record sits in the archive: keys sort in log order, and the same log makes the same
/// keys on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RecordKey {
    /// The log time of the entry that finished the record.
    pub(crate) recorded_ms: u64,
    pub(crate) log_index: u64,
    /// The record's place among those the entry finished.
    pub(crate) position: u32,
}

impl RecordKey {
    /// The first key of a millisecond.
    pub(crate) fn at(recorded_ms: u64) -> RecordKey {
        RecordKey {
            recorded_ms,
            log_index: 0,
            position: 0,
        }
    }

    /// The key as its three numbers, for values kept in the meta tree.
    pub(crate) fn to_tuple(self) -> (u64, u64, u32) {
        (self.recorded_ms, self.log_index, self.position)
    }

    pub(crate) fn from_tuple((recorded_ms, log_index, position): (u64, u64, u32)) -> RecordKey {
        RecordKey {
            recorded_ms,
            log_index,
            position,
        }
    }

    fn to_bytes(self) -> [u8; KEY_BYTES] {
        let mut bytes = [0u8; KEY_BYTES];
        bytes[..8].copy_from_slice(&self.recorded_ms.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.log_index.to_be_bytes());
        bytes[16..].copy_from_slice(&self.position.to_be_bytes());
        bytes
    }

    pub(crate) fn from_bytes(bytes: &[u8; KEY_BYTES]) -> RecordKey {
        let mut time = [0u8; 8];
        let mut index = [0u8; 8];
        let mut position = [0u8; 4];
        time.copy_from_slice(&bytes[..8]);
        index.copy_from_slice(&bytes[8..16]);
        position.copy_from_slice(&bytes[16..]);
        RecordKey {
            recorded_ms: u64::from_be_bytes(time),
            log_index: u64::from_be_bytes(index),
            position: u32::from_be_bytes(position),
        }
    }

    /// The segment file name of a segment starting with this key.
    pub(crate) fn file_name(self) -> String {
        format!(
            "{:020}-{:020}-{:010}{SEGMENT_SUFFIX}",
            self.recorded_ms, self.log_index, self.position
        )
    }

    /// The key a segment file name stands for; `None` for a name [`RecordKey::file_name`]
    /// did not make.
    pub(crate) fn from_file_name(name: &str) -> Option<RecordKey> {
        let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
        let mut parts = stem.split('-');
        let (Some(time), Some(index), Some(position), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let digits = |text: &str, width: usize| {
            (text.len() == width && text.bytes().all(|byte| byte.is_ascii_digit())).then_some(())
        };
        digits(time, 20)?;
        digits(index, 20)?;
        digits(position, 10)?;
        let key = RecordKey {
            recorded_ms: time.parse().ok()?,
            log_index: index.parse().ok()?,
            position: position.parse().ok()?,
        };
        (key.file_name() == name).then_some(key)
    }
}

impl std::fmt::Display for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(log time {} ms, index {}, position {})",
            self.recorded_ms, self.log_index, self.position
        )
    }
}

/// Appends one frame to `buffer`. The payload must be 1 ..= [`MAX_PAYLOAD_BYTES`] bytes.
pub(crate) fn encode_frame(buffer: &mut Vec<u8>, key: RecordKey, payload: &[u8]) -> Option<()> {
    let length = u32::try_from(payload.len())
        .ok()
        .filter(|length| (1..=MAX_PAYLOAD_BYTES).contains(length))?;
    let length = length.to_le_bytes();
    let key = key.to_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length);
    hasher.update(&key);
    hasher.update(payload);
    buffer.extend_from_slice(&length);
    buffer.extend_from_slice(&key);
    buffer.extend_from_slice(&hasher.finalize().to_le_bytes());
    buffer.extend_from_slice(payload);
    Some(())
}

/// What is wrong with a segment, at which byte.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The segment does not start with [`HEADER`].
    BadHeader,
    /// The segment ends inside a frame.
    Truncated {
        offset: u64,
    },
    /// A frame gives a length no frame can have.
    BadLength {
        offset: u64,
        length: u32,
    },
    /// A frame's bytes do not match its checksum.
    Checksum {
        offset: u64,
    },
    /// A frame's key is not after the one before, or not where the segment's name puts it.
    OutOfOrder {
        offset: u64,
        key: RecordKey,
    },
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadHeader => write!(f, "it does not start with a segment header"),
            FrameError::Truncated { offset } => {
                write!(f, "it ends inside the record at byte {offset}")
            }
            FrameError::BadLength { offset, length } => write!(
                f,
                "the record at byte {offset} claims {length} bytes (at most \
                 {MAX_PAYLOAD_BYTES} are possible)"
            ),
            FrameError::Checksum { offset } => {
                write!(f, "the record at byte {offset} does not match its checksum")
            }
            FrameError::OutOfOrder { offset, key } => write!(
                f,
                "the record at byte {offset} has key {key}, out of order for this segment"
            ),
            FrameError::Io(error) => write!(f, "it can't be read ({error})"),
        }
    }
}

/// Reads the frames of one segment in order, up to a known length, checking each.
pub(crate) struct FrameReader {
    file: BufReader<File>,
    /// Where the next frame starts.
    offset: u64,
    /// Bytes of the segment that are read: the file's length, or for the segment being
    /// appended to, what was whole when the read began.
    end: u64,
    /// Every key must be after this one (the segment's first key must equal its name's).
    previous: Option<RecordKey>,
    first: RecordKey,
    /// Set once a frame failed: nothing after it can be found.
    failed: bool,
}

impl FrameReader {
    /// Opens the segment at `path`, named by `first`, and checks its header. `end`: how many
    /// bytes to read (`None`: the whole file).
    pub(crate) fn open(
        path: &Path,
        first: RecordKey,
        end: Option<u64>,
    ) -> Result<FrameReader, FrameError> {
        let file = File::open(path).map_err(FrameError::Io)?;
        let length = file.metadata().map_err(FrameError::Io)?.len();
        let end = end.map_or(length, |end| end.min(length));
        let mut file = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let mut header = [0u8; HEADER.len()];
        if end < HEADER.len() as u64 {
            return Err(FrameError::BadHeader);
        }
        file.read_exact(&mut header).map_err(FrameError::Io)?;
        if header != HEADER {
            return Err(FrameError::BadHeader);
        }
        Ok(FrameReader {
            file,
            offset: HEADER.len() as u64,
            end,
            previous: None,
            first,
            failed: false,
        })
    }

    /// Where the next frame starts: after a failure, where the damage is.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame's key and payload; `None` at the end; an error once, then `None`.
    pub(crate) fn next_frame(&mut self) -> Option<Result<(RecordKey, Vec<u8>), FrameError>> {
        if self.failed || self.offset >= self.end {
            return None;
        }
        let result = self.read_frame();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }

    fn read_frame(&mut self) -> Result<(RecordKey, Vec<u8>), FrameError> {
        let offset = self.offset;
        let left = self.end - offset;
        if left < FRAME_HEADER_BYTES as u64 {
            return Err(FrameError::Truncated { offset });
        }
        let mut header = [0u8; FRAME_HEADER_BYTES];
        self.file.read_exact(&mut header).map_err(FrameError::Io)?;
        let mut length = [0u8; 4];
        let mut key = [0u8; KEY_BYTES];
        let mut stored = [0u8; 4];
        length.copy_from_slice(&header[..4]);
        key.copy_from_slice(&header[4..4 + KEY_BYTES]);
        stored.copy_from_slice(&header[4 + KEY_BYTES..]);
        let length_value = u32::from_le_bytes(length);
        if !(1..=MAX_PAYLOAD_BYTES).contains(&length_value) {
            return Err(FrameError::BadLength {
                offset,
                length: length_value,
            });
        }
        let frame_bytes = FRAME_HEADER_BYTES as u64 + u64::from(length_value);
        if left < frame_bytes {
            return Err(FrameError::Truncated { offset });
        }
        // Bounded above: at most MAX_PAYLOAD_BYTES.
        let mut payload = vec![0u8; length_value as usize];
        self.file.read_exact(&mut payload).map_err(FrameError::Io)?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&length);
        hasher.update(&key);
        hasher.update(&payload);
        if hasher.finalize() != u32::from_le_bytes(stored) {
            return Err(FrameError::Checksum { offset });
        }
        let key = RecordKey::from_bytes(&key);
        let in_order = match self.previous {
            None => key == self.first,
            Some(previous) => key > previous && day_of(key) == day_of(self.first),
        };
        if !in_order {
            return Err(FrameError::OutOfOrder { offset, key });
        }
        self.previous = Some(key);
        self.offset = offset + frame_bytes;
        Ok((key, payload))
    }
}

/// The day of log time a key falls in: a segment holds one day's records.
pub(crate) fn day_of(key: RecordKey) -> u64 {
    key.recorded_ms / DAY_MS
}

/// Milliseconds in a day of log time.
pub(crate) const DAY_MS: u64 = 86_400_000;

/// The path of the segment starting with `first` in `folder`.
pub(crate) fn path_of(folder: &Path, first: RecordKey) -> PathBuf {
    folder.join(first.file_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_like_keys_and_round_trip() {
        let keys = [
            RecordKey {
                recorded_ms: 9,
                log_index: u64::MAX,
                position: 3,
            },
            RecordKey {
                recorded_ms: 10,
                log_index: 2,
                position: 0,
            },
            RecordKey {
                recorded_ms: u64::MAX,
                log_index: 0,
                position: u32::MAX,
            },
        ];
        let mut names: Vec<String> = keys.iter().rev().map(|key| key.file_name()).collect();
        names.sort();
        let back: Vec<RecordKey> = names
            .iter()
            .map(|name| RecordKey::from_file_name(name).unwrap())
            .collect();
        assert_eq!(back, keys);
        for bad in [
            "1-2-3.seg",
            "00000000000000000001-00000000000000000002-0000000003.tmp",
            "0000000000000000000a-00000000000000000002-0000000003.seg",
            "00000000000000000001-00000000000000000002-0000000003-4.seg",
            "99999999999999999999-00000000000000000002-0000000003.seg",
        ] {
            assert_eq!(RecordKey::from_file_name(bad), None, "{bad}");
        }
    }
}
