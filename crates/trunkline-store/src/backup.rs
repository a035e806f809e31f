//! Backups: one node's applied state in a file that says what it is, proves it is whole, and
//! can become the first node of a new cluster.
//!
//! A backup is the state a node had applied at one log index: every setting, tenant, carrier,
//! gateway, deck, DID, device, continuity plan, token record and the route token key, as one
//! published [`AppliedState`] (never a state half-way through an entry). Finished call
//! records live in the archive beside the state, not in it, and are not in a backup.
//!
//! The file:
//!
//! ```text
//! "TLBACKUP"  u32 format (LE)  u32 header length (LE)  header (JSON)  state  SHA-256 of all before
//! ```
//!
//! The state is the snapshot encoding ([`codec`]: versioned, CRC-checked), sealed with the
//! node's newest key when the node has keys (encryption at rest), so a backup is as secret as
//! the data folder it came from. The digest at the end catches any damaged or truncated byte
//! before anything is decoded.

use std::io::Cursor;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{Membership, SnapshotMeta, StoredMembership, Vote};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::seal::{self, KeyRing};
use crate::{codec, AppliedState, Identity, Node, NodeId, Store, StoreError};

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
    pub node_id: NodeId,
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
    #[error("{0}")]
    Keys(String),
    #[error("{} is not empty: restore makes a new node's folder; give a new or empty one", .0.display())]
    NotEmpty(std::path::PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Encodes `applied` as a backup file's bytes, sealed with `keys`' newest key when given.
pub fn encode(
    applied: &AppliedState,
    identity: &Identity,
    taken_ms: u64,
    keys: Option<&KeyRing>,
) -> Result<Vec<u8>, BackupError> {
    let plain = codec::encode(applied)?;
    let (state, sealed_with) = match keys {
        Some(keys) => (
            keys.seal(&plain).map_err(BackupError::Keys)?,
            Some(keys.current_id()),
        ),
        None => (plain, None),
    };
    let last = applied.last_applied;
    let header = BackupHeader {
        cluster_name: identity.cluster_name.clone(),
        node_id: identity.node_id,
        taken_ms,
        index: last.map_or(0, |log_id| log_id.index),
        term: last.map_or(0, |log_id| log_id.leader_id.term),
        state_bytes: state.len() as u64,
        sealed_with,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let header = serde_json::to_vec(&header)
        .map_err(|error| BackupError::Damaged(format!("can't encode the header: {error}")))?;
    let header_len = u32::try_from(header.len())
        .map_err(|_| BackupError::Damaged("the header is too long".to_owned()))?;
    let mut file = Vec::with_capacity(MAGIC.len() + 8 + header.len() + state.len() + DIGEST_BYTES);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&FORMAT.to_le_bytes());
    file.extend_from_slice(&header_len.to_le_bytes());
    file.extend_from_slice(&header);
    file.extend_from_slice(&state);
    let digest = Sha256::digest(&file);
    file.extend_from_slice(&digest);
    Ok(file)
}

/// A backup whose bytes are whole (digest checked), its header read.
#[derive(Debug)]
pub struct CheckedBackup<'a> {
    pub header: BackupHeader,
    state: &'a [u8],
}

/// Checks a backup file's framing and digest and reads its header, without decoding the state
/// (which may need keys).
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

impl CheckedBackup<'_> {
    /// Decodes the state, opening it with `keys` when it is sealed.
    pub fn state(&self, keys: Option<&KeyRing>) -> Result<AppliedState, BackupError> {
        let plain = match (self.header.sealed_with, keys) {
            (None, _) => std::borrow::Cow::Borrowed(self.state),
            (Some(id), None) => {
                return Err(BackupError::Keys(format!(
                    "the backup is sealed with key {id}: give the key file that holds it \
                     (--keys-file)"
                )))
            }
            (Some(_), Some(keys)) => {
                std::borrow::Cow::Owned(keys.open(self.state).map_err(|reason| {
                    BackupError::Keys(format!("can't open the backup: {reason}"))
                })?)
            }
        };
        if self.header.sealed_with.is_none() && seal::key_id_of(&plain).is_some() {
            return Err(BackupError::Damaged(
                "its header says it is not sealed but its state is".to_owned(),
            ));
        }
        let applied: AppliedState = codec::decode(&plain)
            .map_err(|error| BackupError::Damaged(format!("its state is unreadable: {error}")))?;
        let last = applied.last_applied;
        if last.map_or(0, |log_id| log_id.index) != self.header.index
            || last.map_or(0, |log_id| log_id.leader_id.term) != self.header.term
        {
            return Err(BackupError::Damaged(format!(
                "its header says index {} term {}, its state ends at {last:?}",
                self.header.index, self.header.term
            )));
        }
        Ok(applied)
    }
}

/// What [`restore`] made.
#[derive(Debug)]
pub struct Restored {
    pub header: BackupHeader,
    /// The log index the new node starts from.
    pub index: u64,
}

/// Makes `data_dir` (missing or empty) the data folder of node `identity.node_id`, the one
/// voter of a new cluster `identity.cluster_name`, holding the backup's state. The node's
/// addresses in the membership are filled in when it first serves (it leads alone, and sets
/// its own entry to the addresses it advertises). `keys` open a sealed backup and seal the
/// new folder, as the node will run with them.
pub async fn restore(
    file: &[u8],
    data_dir: &Path,
    identity: &Identity,
    keys: Option<std::sync::Arc<KeyRing>>,
) -> Result<Restored, BackupError> {
    let checked = check(file)?;
    let applied = checked.state(keys.as_deref())?;
    let index = first_node_from(applied, data_dir, identity, Node::default(), keys, 0).await?;
    Ok(Restored {
        header: checked.header,
        index,
    })
}

/// Makes `data_dir` (missing or empty) the folder of the one voter of a new cluster holding
/// `applied`, the node's entry in the membership `self_node` (empty addresses when not known:
/// it sets them when it first leads), with a vote in the later of `applied`'s last term and
/// `min_vote_term`, so the node's first election is for a term after both. Returns the log
/// index it starts from.
pub(crate) async fn first_node_from(
    mut applied: AppliedState,
    data_dir: &Path,
    identity: &Identity,
    self_node: Node,
    keys: Option<std::sync::Arc<KeyRing>>,
    min_vote_term: u64,
) -> Result<u64, BackupError> {
    if let Ok(mut entries) = std::fs::read_dir(data_dir) {
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(data_dir.to_owned()));
        }
    }
    let Some(last) = applied.last_applied else {
        return Err(BackupError::Damaged(
            "it holds no applied entry: nothing to restore".to_owned(),
        ));
    };
    // The new cluster's one voter; its addresses come when it serves.
    let members = std::collections::BTreeMap::from([(identity.node_id, self_node)]);
    let membership = Membership::new(
        vec![std::collections::BTreeSet::from([identity.node_id])],
        members,
    );
    applied.membership = StoredMembership::new(Some(last), membership);
    let data = codec::encode(&applied)?;
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: applied.membership.clone(),
        snapshot_id: format!("restored-{}-{}", last.leader_id.term, last.index),
    };

    let store = {
        let data_dir = data_dir.to_owned();
        let identity = identity.clone();
        tokio::task::spawn_blocking(move || Store::open_with_keys(&data_dir, &identity, keys))
            .await
            .map_err(|error| BackupError::Damaged(format!("the restore task failed: {error}")))??
    };
    let storage = |error: openraft::StorageError<NodeId>| {
        BackupError::Store(StoreError::Corrupt {
            path: data_dir.to_owned(),
            detail: format!("can't write the restored state: {error}"),
        })
    };
    store
        .state_machine()
        .install_snapshot(&meta, Box::new(Cursor::new(data)))
        .await
        .map_err(storage)?;
    // A vote in the backup's last term: the node's first election is for a later term, so
    // every entry it appends comes after the restored ones.
    store
        .log_store()
        .save_vote(&Vote::new(
            last.leader_id.term.max(min_vote_term),
            identity.node_id,
        ))
        .await
        .map_err(storage)?;
    Ok(last.index)
}
