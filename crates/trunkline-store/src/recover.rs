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
//!
//! Losing a site is the other case: a quorum of voters gone for good, so there is no leader
//! to catch up from. [`inspect`] and [`force_new_cluster`] make a surviving voter or learner
//! (the edge sites' learners are the point) the one voter of a new cluster with everything in
//! its log, which new nodes then join. Entries never replicated to it are lost; entries it
//! had but had not seen committed are kept (the old cluster may not have committed them).

use std::path::{Path, PathBuf};

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine};
use openraft::Vote;

use crate::acknowledged::read_acknowledged;
use crate::folder::{self, Identity};
use crate::{AppliedState, Node, NodeId, Store, StoreError};

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
/// `keys`: the node's encryption keys when its folder is sealed; the new folder is sealed
/// with them too (a node with keys refuses a folder made without).
pub async fn recover(
    data_dir: &Path,
    forget_vote: bool,
    keys: Option<std::sync::Arc<crate::seal::KeyRing>>,
) -> Result<Recovered, StoreError> {
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
    let moved_to = aside(data_dir, "damaged")?;
    std::fs::rename(data_dir, &moved_to).map_err(|source| StoreError::Io {
        action: "move aside",
        path: data_dir.to_owned(),
        source,
    })?;

    let store = Store::open_with_keys(data_dir, &identity, keys)?;
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

/// A free sibling name for a folder moved aside: `<name>.<why>-<unix seconds>[-n]`.
fn aside(data_dir: &Path, why: &str) -> Result<PathBuf, StoreError> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let name = data_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_owned());
    for attempt in 0..100u32 {
        let suffix = if attempt == 0 {
            format!("{name}.{why}-{seconds}")
        } else {
            format!("{name}.{why}-{seconds}-{attempt}")
        };
        let candidate = data_dir.with_file_name(suffix);
        if !candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(StoreError::Io {
        action: "find a free name beside",
        path: data_dir.to_owned(),
        source: std::io::Error::other("100 earlier copies moved aside are in the way"),
    })
}

/// A stopped node's folder, opened (and locked) for `trunkline recover --force-new-cluster`:
/// read, nothing changed yet.
pub struct Survivor {
    pub identity: Identity,
    store: Store,
    /// The voters of the cluster as its log last names them, with their addresses.
    voters: Vec<(NodeId, Node)>,
    /// Index of the last entry in its log.
    pub last_log_index: u64,
    /// Entries after the last one it knew committed: kept (anything in a node's log was
    /// sent by a leader, and losing an acknowledged write is worse), but they may never have
    /// been committed in the old cluster.
    pub after_committed: u64,
    /// The highest term it voted in.
    vote_term: u64,
}

impl std::fmt::Debug for Survivor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Survivor")
            .field("identity", &self.identity)
            .field("last_log_index", &self.last_log_index)
            .finish_non_exhaustive()
    }
}

impl Survivor {
    /// The voters of the cluster as this node last knew it, with their addresses.
    pub fn voters(&self) -> &[(NodeId, Node)] {
        &self.voters
    }
}

/// Opens a stopped node's folder and reads what it holds: its identity, the last membership
/// its log names, how far its log goes. Changes nothing.
pub async fn inspect(
    data_dir: &Path,
    keys: Option<std::sync::Arc<crate::seal::KeyRing>>,
) -> Result<Survivor, StoreError> {
    let identity = folder::identity_of(data_dir)?;
    let store = {
        let (folder, identity) = (data_dir.to_owned(), identity.clone());
        tokio::task::spawn_blocking(move || Store::open_with_keys(&folder, &identity, keys))
            .await
            .map_err(|error| io(data_dir.to_owned(), &error.to_string()))??
    };
    let storage =
        |error: openraft::StorageError<NodeId>| io(data_dir.to_owned(), &error.to_string());
    let mut log_store = store.log_store();
    let committed = log_store
        .read_committed()
        .await
        .map_err(storage)?
        .map_or(0, |log_id| log_id.index);
    let vote_term = log_store
        .read_vote()
        .await
        .map_err(storage)?
        .map_or(0, |vote| vote.leader_id().term);
    let last_log_index = log_store
        .get_log_state()
        .await
        .map_err(storage)?
        .last_log_id
        .map_or(0, |log_id| log_id.index);
    let applied = store.reader().current();
    let mut membership = applied.membership.membership().clone();
    let mut runs = LogRuns {
        next: applied.last_applied.map_or(0, |log_id| log_id.index + 1),
        to: last_log_index,
    };
    while let Some(entries) = runs.next(&mut log_store, data_dir).await? {
        for entry in &entries {
            if let openraft::EntryPayload::Membership(changed) = &entry.payload {
                membership = changed.clone();
            }
        }
    }
    let voters = membership
        .voter_ids()
        .map(|id| (id, membership.get_node(&id).cloned().unwrap_or_default()))
        .collect();
    Ok(Survivor {
        identity,
        store,
        voters,
        last_log_index,
        after_committed: last_log_index.saturating_sub(committed),
        vote_term,
    })
}

/// What [`force_new_cluster`] did.
#[derive(Debug)]
pub struct Forced {
    /// Where the node's old folder is now.
    pub moved_to: PathBuf,
    /// The log index the new cluster starts from.
    pub index: u64,
}

/// Makes the node of `survivor` the one voter of a new cluster with its state: the old folder
/// moves aside (kept whole), a new one takes its place with the state, a membership of only
/// this node and a vote past every term it saw, and the call record archive moves over.
pub async fn force_new_cluster(
    data_dir: &Path,
    survivor: Survivor,
    keys: Option<std::sync::Arc<crate::seal::KeyRing>>,
) -> Result<Forced, StoreError> {
    let storage =
        |error: openraft::StorageError<NodeId>| io(data_dir.to_owned(), &error.to_string());
    // Every entry of its log applied, as they would be once committed.
    let Survivor {
        identity,
        store,
        voters,
        last_log_index,
        vote_term,
        ..
    } = survivor;
    // Its own entry as the old cluster knew it (a learner's too), so its addresses stand
    // from the start.
    let self_node = store
        .reader()
        .current()
        .membership
        .membership()
        .get_node(&identity.node_id)
        .cloned()
        .or_else(|| {
            voters
                .iter()
                .find(|(id, _)| *id == identity.node_id)
                .map(|(_, node)| node.clone())
        })
        .unwrap_or_default();
    let mut log_store = store.log_store();
    let mut state_machine = store.state_machine();
    let mut runs = LogRuns {
        next: store
            .reader()
            .current()
            .last_applied
            .map_or(0, |log_id| log_id.index + 1),
        to: last_log_index,
    };
    while let Some(entries) = runs.next(&mut log_store, data_dir).await? {
        state_machine.apply(entries).await.map_err(storage)?;
    }
    let applied = AppliedState::clone(&store.reader().current());
    drop((log_store, state_machine));
    // Closed (and the folder unlocked) before it moves.
    drop(store);
    let moved_to = aside(data_dir, "before-new-cluster")?;
    std::fs::rename(data_dir, &moved_to).map_err(|source| StoreError::Io {
        action: "move aside",
        path: data_dir.to_owned(),
        source,
    })?;
    let index =
        crate::backup::first_node_from(applied, data_dir, &identity, self_node, keys, vote_term)
            .await
            .map_err(|error| match error {
                crate::backup::BackupError::Store(error) => error,
                other => io(data_dir.to_owned(), &other.to_string()),
            })?;
    // The archive's segments are files of their own: they move over as they are.
    let (old, new) = (
        moved_to.join(folder::ARCHIVE_DIR),
        data_dir.join(folder::ARCHIVE_DIR),
    );
    if let Ok(entries) = std::fs::read_dir(&old) {
        for entry in entries.flatten() {
            let to = new.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(|source| StoreError::Io {
                action: "move a call record segment into",
                path: to.clone(),
                source,
            })?;
        }
    }
    Ok(Forced { moved_to, index })
}

/// The log's entries from `next` to `to`, a bounded run at a time (the log's read limit).
struct LogRuns {
    next: u64,
    to: u64,
}

impl LogRuns {
    async fn next(
        &mut self,
        log_store: &mut crate::LogStore,
        data_dir: &Path,
    ) -> Result<Option<Vec<openraft::Entry<crate::TypeConfig>>>, StoreError> {
        if self.next > self.to {
            return Ok(None);
        }
        let entries = log_store
            .try_get_log_entries(self.next..=self.to)
            .await
            .map_err(|error| io(data_dir.to_owned(), &error.to_string()))?;
        let Some(last) = entries.last().map(|entry| entry.log_id.index) else {
            return Err(StoreError::Corrupt {
                path: data_dir.to_owned(),
                detail: format!(
                    "log entry {} is missing though the log goes to {}",
                    self.next, self.to
                ),
            });
        };
        self.next = last + 1;
        Ok(Some(entries))
    }
}

fn io(path: PathBuf, detail: &str) -> StoreError {
    StoreError::Io {
        action: "recover",
        path,
        source: std::io::Error::other(detail.to_owned()),
    }
}
