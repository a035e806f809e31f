//! Backups: one node's applied state in a file that says what it is, proves it is whole, and
//! can become the first node of a new cluster.
//!
//! A backup is the state a node had applied at one log index: every setting, tenant, carrier,
//! gateway, deck, DID, device, continuity plan, token record and the route token key, as one
//! published [`AppliedState`] (never a state half-way through an entry). Finished call
//! records live in the archive beside the state, not in it, and are not in a backup.
//!
//! The file's framing is the core's ([`trunkline_core::backup`]: magic, format, a JSON header,
//! a SHA-256 of everything); here is the state inside it: the snapshot encoding ([`codec`]:
//! versioned, CRC-checked), sealed with the node's newest key when the node has keys
//! (encryption at rest), so a backup is as secret as the data folder it came from.

use std::io::Cursor;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{Membership, SnapshotMeta, StoredMembership, Vote};
pub use trunkline_core::backup::{check, BackupHeader, CheckedBackup, Contents};

use crate::seal::{self, KeyRing};
use crate::{codec, AppliedState, Identity, Node, NodeId, Store, StoreError};

/// Why a backup can't be made or used.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    File(#[from] trunkline_core::backup::BackupError),
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
        state_bytes: 0,
        sealed_with,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        contents: Contents::of(&applied.state),
    };
    Ok(trunkline_core::backup::frame(header, &state)?)
}

/// Decodes a checked backup's state, opening it with `keys` when it is sealed.
fn state_of(
    checked: &CheckedBackup<'_>,
    keys: Option<&KeyRing>,
) -> Result<AppliedState, BackupError> {
    let plain = match (checked.header.sealed_with, keys) {
        (None, _) => std::borrow::Cow::Borrowed(checked.state),
        (Some(id), None) => {
            return Err(BackupError::Keys(format!(
                "the backup is sealed with key {id}: give the key file that holds it \
                 (--encryption-key-file)"
            )))
        }
        (Some(_), Some(keys)) => std::borrow::Cow::Owned(
            keys.open(checked.state)
                .map_err(|reason| BackupError::Keys(format!("can't open the backup: {reason}")))?,
        ),
    };
    if checked.header.sealed_with.is_none() && seal::key_id_of(&plain).is_some() {
        return Err(BackupError::Damaged(
            "its header says it is not sealed but its state is".to_owned(),
        ));
    }
    let applied: AppliedState = codec::decode(&plain)
        .map_err(|error| BackupError::Damaged(format!("its state is unreadable: {error}")))?;
    let last = applied.last_applied;
    if last.map_or(0, |log_id| log_id.index) != checked.header.index
        || last.map_or(0, |log_id| log_id.leader_id.term) != checked.header.term
    {
        return Err(BackupError::Damaged(format!(
            "its header says index {} term {}, its state ends at {last:?}",
            checked.header.index, checked.header.term
        )));
    }
    if Contents::of(&applied.state) != checked.header.contents {
        return Err(BackupError::Damaged(
            "its state does not hold what its header counts".to_owned(),
        ));
    }
    Ok(applied)
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
    let applied = state_of(&checked, keys.as_deref())?;
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
