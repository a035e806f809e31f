//! The backup file's framing: what a backup says about itself and the proof that it is whole,
//! readable without the store (trunkctl checks a file with it; the store writes the state in
//! it and reads it back).
//!
//! ```text
//! "TLBACKUP"  u32 format (LE)  u32 header length (LE)  header (JSON)  state  SHA-256 of all before
//! ```
//!
//! The digest at the end catches any damaged, truncated or altered byte before anything is
//! decoded, the header included.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"TLBACKUP";
/// The format this build writes and reads.
pub const FORMAT: u32 = 1;
const DIGEST_BYTES: usize = 32;
/// Largest header accepted: it is a few hundred bytes of JSON.
const MAX_HEADER_BYTES: u32 = 64 * 1024;

/// What a backup says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The cluster and node it was taken from.
    pub cluster_name: String,
    pub node_id: u64,
    /// Wall-clock time it was taken, unix milliseconds.
    pub taken_ms: u64,
    /// The last log entry in the state: its index and term.
    pub index: u64,
    pub term: u64,
    /// Bytes of the (sealed) state that follows the header.
    pub state_bytes: u64,
    /// The key the state is sealed with; `None`: not sealed.
    pub sealed_with: Option<u32>,
    /// The build that wrote it.
    pub version: String,
    /// What the state holds, counted when it was taken.
    pub contents: Contents,
}

/// Counts of what a backup's state holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    pub settings: u64,
    pub tenants: u64,
    pub carriers: u64,
    pub gateways: u64,
    pub rate_rows: u64,
    pub dids: u64,
    pub devices: u64,
    pub edges: u64,
}

impl Contents {
    /// The counts of `state`.
    pub fn of(state: &crate::State) -> Contents {
        let routing = state.routing();
        let inbound = state.inbound();
        Contents {
            settings: state.settings().len() as u64,
            tenants: routing.tenants().count() as u64,
            carriers: routing.carriers().count() as u64,
            gateways: routing.gateways().count() as u64,
            rate_rows: routing.decks().map(|(_, deck)| deck.len() as u64).sum(),
            dids: inbound.dids().count() as u64,
            devices: inbound.devices().count() as u64,
            edges: inbound.edges().count() as u64,
        }
    }
}

/// Why a backup file can't be used.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a Trunkline backup (it does not start with TLBACKUP)")]
    Foreign,
    #[error("backup format {0} is not one this build reads (it reads format {FORMAT})")]
    Format(u32),
    #[error("the backup is truncated: {0}")]
    Truncated(String),
    #[error("the backup is damaged: {0}")]
    Damaged(String),
}

/// A backup file's bytes: `header` (its `state_bytes` set here) and `state`, framed and
/// digested.
pub fn frame(mut header: BackupHeader, state: &[u8]) -> Result<Vec<u8>, BackupError> {
    header.state_bytes = state.len() as u64;
    let header = serde_json::to_vec(&header)
        .map_err(|error| BackupError::Damaged(format!("can't encode the header: {error}")))?;
    let header_len = u32::try_from(header.len())
        .map_err(|_| BackupError::Damaged("the header is too long".to_owned()))?;
    let mut file = Vec::with_capacity(MAGIC.len() + 8 + header.len() + state.len() + DIGEST_BYTES);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&FORMAT.to_le_bytes());
    file.extend_from_slice(&header_len.to_le_bytes());
    file.extend_from_slice(&header);
    file.extend_from_slice(state);
    let digest = Sha256::digest(&file);
    file.extend_from_slice(&digest);
    Ok(file)
}

/// A backup whose bytes are whole (digest checked), its header read.
#[derive(Debug)]
pub struct CheckedBackup<'a> {
    pub header: BackupHeader,
    /// The state's bytes, sealed when `header.sealed_with` says so.
    pub state: &'a [u8],
}

/// Checks a backup file's framing and digest and reads its header, without decoding the
/// state (the store does that, with keys for a sealed one).
pub fn check(file: &[u8]) -> Result<CheckedBackup<'_>, BackupError> {
    if file.len() < MAGIC.len() || &file[..MAGIC.len()] != MAGIC {
        return Err(BackupError::Foreign);
    }
    let fixed = MAGIC.len() + 8;
    if file.len() < fixed + DIGEST_BYTES {
        return Err(BackupError::Truncated(format!(
            "{} bytes is shorter than any backup",
            file.len()
        )));
    }
    let word = |at: usize| {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&file[at..at + 4]);
        u32::from_le_bytes(bytes)
    };
    let format = word(MAGIC.len());
    if format != FORMAT {
        return Err(BackupError::Format(format));
    }
    let header_len = word(MAGIC.len() + 4);
    if header_len > MAX_HEADER_BYTES {
        return Err(BackupError::Damaged(format!(
            "its header claims {header_len} bytes"
        )));
    }
    let body_end = file.len() - DIGEST_BYTES;
    let header_end = fixed + header_len as usize;
    if header_end > body_end {
        return Err(BackupError::Truncated(
            "it ends inside its header".to_owned(),
        ));
    }
    // The digest first: nothing of a damaged file is trusted, the header included.
    let digest = Sha256::digest(&file[..body_end]);
    if digest.as_slice() != &file[body_end..] {
        return Err(BackupError::Damaged(
            "its SHA-256 does not match its content (a damaged, truncated or altered file)"
                .to_owned(),
        ));
    }
    let header: BackupHeader = serde_json::from_slice(&file[fixed..header_end])
        .map_err(|error| BackupError::Damaged(format!("its header is unreadable: {error}")))?;
    let state = &file[header_end..body_end];
    if state.len() as u64 != header.state_bytes {
        return Err(BackupError::Truncated(format!(
            "its header says {} bytes of state, it holds {}",
            header.state_bytes,
            state.len()
        )));
    }
    Ok(CheckedBackup { header, state })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header() -> BackupHeader {
        BackupHeader {
            cluster_name: "c".into(),
            node_id: 1,
            taken_ms: 2,
            index: 3,
            term: 4,
            state_bytes: 0,
            sealed_with: None,
            version: "v".into(),
            contents: Contents::default(),
        }
    }

    #[test]
    fn a_framed_backup_checks_and_every_changed_byte_is_caught() {
        let file = frame(header(), b"state bytes").unwrap();
        let checked = check(&file).unwrap();
        assert_eq!(checked.state, b"state bytes");
        assert_eq!(checked.header.state_bytes, 11);
        for at in 0..file.len() {
            let mut damaged = file.clone();
            damaged[at] ^= 0x01;
            assert!(check(&damaged).is_err(), "a flipped byte {at} passed");
        }
        for len in 0..file.len() {
            assert!(
                check(&file[..len]).is_err(),
                "a file cut to {len} bytes passed"
            );
        }
        assert!(matches!(
            check(b"PK\x03\x04 zip"),
            Err(BackupError::Foreign)
        ));
    }
}
