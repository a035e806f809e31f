//! Bringing a node back from a damaged data folder: move the folder aside, start an empty one
//! for the same node, and keep the one thing Raft needs from the old one, the last vote.
//!
//! An empty folder alone would be unsafe for a voter: a node with an empty log grants its
//! vote to any candidate, so it could vote a second time in a term it had already voted in,
//! and two leaders could be elected for one term. The acknowledged record
//! ([`crate::acknowledged`]) sits outside sled and survives most damage; its vote is written
//! into the new folder before the node runs again. The node then has no log and no
//! membership of its own: it never calls an election, and the leader brings it back (with a
//! snapshot when the log was compacted).

use std::path::{Path, PathBuf};

use openraft::storage::RaftLogStorage;
use openraft::Vote;

use crate::acknowledged::read_acknowledged;
use crate::folder::{self, Identity};
use crate::{NodeId, Store, StoreError};

/// What [`recover`] did.
#[derive(Debug)]
pub struct Recovered {
    pub identity: Identity,
    /// Where the damaged folder is now; nothing in it was changed.
    pub moved_to: PathBuf,
    /// The vote carried into the new folder; `None` when there was none to keep.
    pub vote: Option<Vote<NodeId>>,
}

/// Moves the damaged folder at `data_dir` aside and makes `data_dir` an empty folder for the
/// same cluster and node that keeps the last acknowledged vote. Refuses when the folder is in
/// use, is not a data folder, or its vote can't be read (unless `forget_vote`: safe only for
/// a node that was removed from the cluster's membership first).
pub async fn recover(data_dir: &Path, forget_vote: bool) -> Result<Recovered, StoreError> {
    let identity = folder::identity_of(data_dir)?;
    let vote = {
        // Held while reading and moving: no node may run on the folder meanwhile.
        let _lock = folder::lock_existing(data_dir)?;
        let vote = match read_acknowledged(data_dir) {
            Ok(Some(record)) => record.vote,
            Ok(None) | Err(_) if forget_vote => None,
            Ok(None) => {
                return Err(StoreError::Corrupt {
                    path: data_dir.to_owned(),
                    detail: "the record of this node's last vote is missing, so an empty \
                             folder could vote twice in one term. Remove the node from the \
                             cluster first (`trunkctl cluster remove N`), then run recover \
                             with --forget-vote and join it again"
                        .to_owned(),
                })
            }
            Err(error) => {
                return Err(StoreError::Corrupt {
                    path: data_dir.to_owned(),
                    detail: format!(
                        "the record of this node's last vote is unreadable ({error}), so an \
                         empty folder could vote twice in one term. Remove the node from the \
                         cluster first (`trunkctl cluster remove N`), then run recover with \
                         --forget-vote and join it again"
                    ),
                })
            }
        };
        vote
    };
    let moved_to = aside(data_dir)?;
    std::fs::rename(data_dir, &moved_to).map_err(|source| StoreError::Io {
        action: "move aside",
        path: data_dir.to_owned(),
        source,
    })?;

    let store = Store::open(data_dir, &identity)?;
    if let Some(vote) = vote {
        let mut log_store = store.log_store();
        log_store
            .save_vote(&vote)
            .await
            .map_err(|error| StoreError::Io {
                action: "save the vote in",
                path: data_dir.to_owned(),
                source: std::io::Error::other(error.to_string()),
            })?;
    }
    Ok(Recovered {
        identity,
        moved_to,
        vote,
    })
}

/// A free sibling name for the damaged folder: `<name>.damaged-<unix seconds>[-n]`.
fn aside(data_dir: &Path) -> Result<PathBuf, StoreError> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let name = data_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_owned());
    for attempt in 0..100u32 {
        let suffix = if attempt == 0 {
            format!("{name}.damaged-{seconds}")
        } else {
            format!("{name}.damaged-{seconds}-{attempt}")
        };
        let candidate = data_dir.with_file_name(suffix);
        if !candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(StoreError::Io {
        action: "find a free name beside",
        path: data_dir.to_owned(),
        source: std::io::Error::other("100 earlier damaged copies are in the way"),
    })
}
