//! The check a data folder passes before a node may use it: everything sled holds is
//! readable and consistent, and it holds at least what the node acknowledged.
//!
//! sled 0.34 may come back from damage without some of its recent writes, or without some
//! values, and say nothing. Each stored value carries a checksum ([`codec`]), so a damaged
//! value is found when read; this check reads every value once at open, and compares what is
//! there with the record kept outside sled ([`crate::acknowledged`]):
//!
//! - the vote in sled is at least the acknowledged vote (a smaller one means this node could
//!   vote twice in a term);
//! - the log holds the acknowledged last log id (or it is covered by a purge), and is whole:
//!   no hole between what the purge or the snapshot covers (or index 0) and its last entry;
//! - a purged log has a snapshot covering the purge, and the snapshot is at least the
//!   acknowledged one;
//! - the committed log id is not past the end of the log.
//!
//! The call record archive, outside sled, is checked as it is opened
//! ([`CdrArchive::open`](crate::cdr_archive::CdrArchive::open), right after this check): every
//! file in its folder is a segment named by its first key, and the newest segment is whole up
//! to where it was last synced (a torn tail after that is cut off; the log writes it again).
//! The frames of older segments are checked as they are read: reading months of records at
//! every start would hold the node back for minutes.
//!
//! Any failure is [`StoreError::Corrupt`] naming what is damaged and what was expected.

use openraft::{LogId, SnapshotMeta, Vote};

use crate::database::Database;
use crate::log_store::{decode_entry, KEY_COMMITTED, KEY_LAST_PURGED, KEY_VOTE};
use crate::snapshot_store::KEY_META;
use crate::{Node, NodeId, StoreError};

/// Checks the open database against itself and the acknowledged record.
pub(crate) fn check(database: &Database) -> Result<(), StoreError> {
    let damaged = |detail: String| StoreError::Corrupt {
        path: database.path.clone(),
        detail,
    };
    let acknowledged = database.acknowledged();
    let vote: Option<Vote<NodeId>> = read(database, &database.raft_state, KEY_VOTE, "the vote")?;
    let committed: Option<LogId<NodeId>> = read(
        database,
        &database.raft_state,
        KEY_COMMITTED,
        "the committed log id",
    )?;
    let purged: Option<LogId<NodeId>> = read(
        database,
        &database.raft_state,
        KEY_LAST_PURGED,
        "the purged log id",
    )?;
    let snapshot: Option<SnapshotMeta<NodeId, Node>> = read(
        database,
        &database.snapshot,
        KEY_META,
        "the snapshot's description",
    )?;

    if let Some(acknowledged_vote) = acknowledged.vote {
        let kept = vote.is_some_and(|vote| {
            vote == acknowledged_vote
                || vote
                    .partial_cmp(&acknowledged_vote)
                    .is_some_and(|order| order.is_gt())
        });
        if !kept {
            return Err(damaged(format!(
                "the vote is {}, but this node had saved the vote {acknowledged_vote}: it could \
                 vote twice in one term",
                describe(vote.as_ref())
            )));
        }
    }

    // Every entry: readable, under its own index, and no hole: the first entry after the
    // purged prefix follows the purge (or index 0), or a snapshot covers everything before
    // it (a follower that installed a snapshot keeps its log from there); after the first,
    // every index follows the one before.
    let snapshot_last = snapshot.as_ref().and_then(|meta| meta.last_log_id);
    let covered_before_log = [purged, snapshot_last]
        .into_iter()
        .flatten()
        .map(|log_id| log_id.index.saturating_add(1))
        .max()
        .unwrap_or(0);
    let mut expected_next: Option<u64> = None;
    let mut last_entry: Option<LogId<NodeId>> = None;
    let mut entry_at_acknowledged: Option<LogId<NodeId>> = None;
    for item in database.logs.iter() {
        let (key, value) =
            item.map_err(|error| damaged(format!("the log can't be read ({error})")))?;
        let entry = decode_entry(database, &key, &value)
            .map_err(|error| damaged(format!("a log entry is unreadable ({error})")))?;
        let index = entry.log_id.index;
        if acknowledged
            .last_log_id
            .is_some_and(|last| last.index == index)
        {
            entry_at_acknowledged = Some(entry.log_id);
        }
        if purged.is_some_and(|purged| index <= purged.index) {
            // Left by a purge a crash interrupted; never read.
            continue;
        }
        let hole = match expected_next {
            Some(expected) => (index != expected).then_some(expected),
            None => (index > covered_before_log).then_some(covered_before_log),
        };
        if let Some(expected) = hole {
            return Err(damaged(format!(
                "the log is missing entries {expected} to {}: entry {index} follows {}",
                index.saturating_sub(1),
                describe(last_entry.as_ref().or(snapshot_last.as_ref()))
            )));
        }
        expected_next = Some(index.saturating_add(1));
        last_entry = Some(entry.log_id);
    }
    let last_log_id = match (last_entry, purged) {
        (Some(entry), _) => Some(entry),
        (None, purged) => purged,
    };

    if let Some(acknowledged_last) = acknowledged.last_log_id {
        let covered_by_purge = purged.is_some_and(|purged| acknowledged_last.index <= purged.index);
        if !covered_by_purge && entry_at_acknowledged != Some(acknowledged_last) {
            return Err(damaged(format!(
                "the log ends at {} and holds {} at index {}, but this node had acknowledged \
                 entries up to {acknowledged_last}",
                describe(last_log_id.as_ref()),
                describe(entry_at_acknowledged.as_ref()),
                acknowledged_last.index
            )));
        }
    }

    if let Some(purged) = purged {
        if snapshot_last.is_none_or(|covered| covered.index < purged.index) {
            return Err(damaged(format!(
                "the log is purged up to {purged} but the snapshot covers only {}: the state \
                 before the log is lost",
                describe(snapshot_last.as_ref())
            )));
        }
    }
    if let Some(acknowledged_snapshot) = acknowledged.snapshot {
        if snapshot_last.is_none_or(|covered| covered.index < acknowledged_snapshot.index) {
            return Err(damaged(format!(
                "the snapshot covers {}, but this node had stored one covering \
                 {acknowledged_snapshot}",
                describe(snapshot_last.as_ref())
            )));
        }
    }
    if let Some(committed) = committed {
        let end = [last_log_id, snapshot_last]
            .into_iter()
            .flatten()
            .map(|log_id| log_id.index)
            .max();
        if end.is_none_or(|end| end < committed.index) {
            return Err(damaged(format!(
                "entry {committed} is recorded as committed but the log ends at {}",
                describe(last_log_id.as_ref())
            )));
        }
    }
    Ok(())
}

/// The value under `key`, decoded and checked; damage names `what` it was.
fn read<T: serde::de::DeserializeOwned>(
    database: &Database,
    tree: &sled::Tree,
    key: &str,
    what: &str,
) -> Result<Option<T>, StoreError> {
    let damaged = |detail: String| StoreError::Corrupt {
        path: database.path.clone(),
        detail,
    };
    let bytes = tree
        .get(key)
        .map_err(|error| damaged(format!("{what} can't be read ({error})")))?;
    bytes
        .map(|bytes| database.decode(&bytes))
        .transpose()
        .map_err(|error| damaged(format!("{what} is unreadable ({error})")))
}

fn describe<T: std::fmt::Display>(value: Option<&T>) -> String {
    value.map_or_else(|| "nothing".to_owned(), ToString::to_string)
}
