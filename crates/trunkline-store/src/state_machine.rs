//! The state machine: openraft's [`RaftStateMachine`] over [`trunkline_core::State`], and the
//! lock-free view readers get of it.
//!
//! The applied state lives in memory as an immutable [`AppliedState`] behind an [`Arc`].
//! [`RaftStateMachine::apply`] clones it (cheap: the core state's parts are `Arc`s copied only
//! when changed), applies the whole batch to the clone and publishes the result once, with an
//! atomic pointer swap. A [`StateReader`] loads the current `Arc` without ever waiting on a lock
//! the apply path holds, and an `Arc` a reader holds never changes under it.
//!
//! Durability comes from snapshots (see [`snapshot_store`](crate::snapshot_store)): at open
//! the state starts from the stored snapshot, and openraft re-applies the committed log after
//! it.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use arc_swap::ArcSwap;
use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use trunkline_core::{Response, State};

use crate::cdr_archive::CdrArchive;
use crate::codec;
use crate::database::Database;
use crate::error::{storage_error, violation};
use crate::snapshot_store::SnapshotStore;
use crate::{Node, NodeId, StoreError, TypeConfig};

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// Everything the state machine has applied, as one immutable value. It is also what a
/// snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedState {
    pub state: State,
    /// The last log entry applied; `None` before the first.
    pub last_applied: Option<LogId<NodeId>>,
    /// The last membership entry applied, with its log id.
    pub membership: StoredMembership<NodeId, Node>,
}

/// What every [`StateMachineStore`] handle shares.
struct Machine {
    /// The current state. Shared with every [`StateReader`], which hold nothing else of the
    /// machine, so a reader never keeps the database open.
    current: Arc<ArcSwap<AppliedState>>,
    /// Ticks after every publication, for readers waiting on a change. Dropped with the
    /// machine, which tells waiting readers no change will come.
    changes: watch::Sender<()>,
    snapshots: SnapshotStore,
    /// Where finished call records go as entries are applied.
    cdrs: CdrArchive,
    /// Serialises the writers of the applied state (apply and install), so no change is lost
    /// between loading the current state and publishing the next. Readers never take it.
    apply_lock: tokio::sync::Mutex<()>,
}

impl Machine {
    /// Makes `applied` the state every reader sees: an atomic pointer swap, then a tick.
    fn publish(&self, applied: AppliedState) {
        self.current.store(Arc::new(applied));
        self.changes.send_replace(());
    }
}

/// The state-machine side of a [`Store`](crate::Store). A cheap handle; clones share the state.
#[derive(Clone)]
pub struct StateMachineStore {
    machine: Arc<Machine>,
}

impl fmt::Debug for StateMachineStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("last_applied", &self.machine.current.load().last_applied)
            .finish_non_exhaustive()
    }
}

impl StateMachineStore {
    /// Starts from the stored snapshot, if any. Blocks on disk I/O.
    pub(crate) fn open(database: Arc<Database>, cdrs: CdrArchive) -> Result<Self, StoreError> {
        let path = database.path.clone();
        let snapshots = SnapshotStore::new(database);
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.clone(),
            detail,
        };
        let applied = match snapshots
            .load()
            .map_err(|error| corrupt(format!("the stored snapshot is unreadable ({error})")))?
        {
            None => AppliedState::default(),
            Some((meta, data)) => {
                let applied: AppliedState = codec::decode(&data).map_err(|error| {
                    corrupt(format!(
                        "the data of snapshot {} is unreadable ({error})",
                        meta.snapshot_id
                    ))
                })?;
                check_snapshot(&meta, &applied).map_err(corrupt)?;
                applied
            }
        };
        cdrs.retain_since(retained_since_ms(&applied.state));
        let (changes, _) = watch::channel(());
        Ok(StateMachineStore {
            machine: Arc::new(Machine {
                current: Arc::new(ArcSwap::from_pointee(applied)),
                changes,
                snapshots,
                cdrs,
                apply_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// This node's archive of finished call records.
    pub fn cdr_archive(&self) -> CdrArchive {
        self.machine.cdrs.clone()
    }

    /// A handle for reading the applied state; it sees every later publication.
    pub fn reader(&self) -> StateReader {
        StateReader {
            current: Arc::clone(&self.machine.current),
            changes: self.machine.changes.subscribe(),
        }
    }
}

/// The log time before which the retention keeps no record, as of `state`.
fn retained_since_ms(state: &State) -> u64 {
    state
        .time_ms()
        .saturating_sub(trunkline_core::cdr::retention_ms(state.settings()))
}

/// The meta of a snapshot must describe the state it carries.
fn check_snapshot(meta: &SnapshotMeta<NodeId, Node>, applied: &AppliedState) -> Result<(), String> {
    if meta.last_log_id != applied.last_applied {
        return Err(format!(
            "snapshot {} says it ends at {:?} but its state ends at {:?}",
            meta.snapshot_id, meta.last_log_id, applied.last_applied
        ));
    }
    if meta.last_membership != applied.membership {
        return Err(format!(
            "snapshot {} says its membership is {:?} but its state holds {:?}",
            meta.snapshot_id, meta.last_membership, applied.membership
        ));
    }
    Ok(())
}

/// Reads the applied state without ever waiting on the apply path. Clone it freely.
#[derive(Clone)]
pub struct StateReader {
    current: Arc<ArcSwap<AppliedState>>,
    changes: watch::Receiver<()>,
}

impl fmt::Debug for StateReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateReader")
            .field("last_applied", &self.current.load().last_applied)
            .finish_non_exhaustive()
    }
}

impl StateReader {
    /// The latest published state. The returned value never changes; call again for news.
    pub fn current(&self) -> Arc<AppliedState> {
        self.current.load_full()
    }

    /// Waits for the next publication after the last one this reader waited for (or after it
    /// was made), then returns the current state. Fails once the state machine is dropped.
    pub async fn changed(&mut self) -> Result<Arc<AppliedState>, StoreError> {
        self.changes
            .changed()
            .await
            .map_err(|_closed| StoreError::Closed)?;
        Ok(self.current())
    }

    /// Waits until the entry at `index` (or a later one) is applied, then returns the state:
    /// how a read asks for "at least index N". Wrap it in a timeout: it waits for as long as
    /// it takes.
    pub async fn wait_for_applied(&mut self, index: u64) -> Result<Arc<AppliedState>, StoreError> {
        loop {
            // Mark what is published now as seen before looking at it, so a publication that
            // lands after the look still wakes the wait below.
            self.changes.borrow_and_update();
            let current = self.current();
            if current
                .last_applied
                .is_some_and(|applied| applied.index >= index)
            {
                return Ok(current);
            }
            self.changes
                .changed()
                .await
                .map_err(|_closed| StoreError::Closed)?;
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>)> {
        let current = self.machine.current.load();
        Ok((current.last_applied, current.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let _one_writer = self.machine.apply_lock.lock().await;
        // Exported when traces are on (the node's trace layer takes this crate's spans);
        // below the log lines' level otherwise, so it costs nothing.
        let _span = tracing::debug_span!("apply").entered();
        let started = std::time::Instant::now();
        let mut next = AppliedState::clone(&self.machine.current.load());
        let mut responses = Vec::new();
        let mut archive = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            if let Some(last) = next.last_applied.filter(|last| last.index >= log_id.index) {
                return Err(violation(
                    ErrorSubject::Apply(log_id),
                    ErrorVerb::Write,
                    format!("entry {log_id} comes after {last}, which is already applied"),
                ));
            }
            next.last_applied = Some(log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::None,
                EntryPayload::Normal(request) => {
                    let response = next
                        .state
                        .apply_archiving(log_id.index, &request, &mut archive);
                    if !archive.is_empty() {
                        // On disk before the state that finished them is published.
                        let retention = trunkline_core::cdr::retention_ms(next.state.settings());
                        self.machine
                            .cdrs
                            .append(next.state.time_ms(), log_id.index, &archive, retention)
                            .map_err(|error| {
                                storage_error(ErrorSubject::Apply(log_id), ErrorVerb::Write, &error)
                            })?;
                        archive.clear();
                    }
                    response
                }
                EntryPayload::Membership(membership) => {
                    next.membership = StoredMembership::new(Some(log_id), membership);
                    Response::None
                }
            };
            responses.push(response);
        }
        if !responses.is_empty() {
            self.machine.publish(next);
        }
        let metrics = self.machine.snapshots.metrics();
        metrics.apply_seconds.observe(started.elapsed());
        metrics.entries_applied.add(responses.len() as u64);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            covered_bytes: self.machine.snapshots.log_bytes(),
            applied: self.machine.current.load_full(),
            machine: Arc::clone(&self.machine),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let data = snapshot.into_inner();
        let applied: AppliedState = codec::decode(&data)
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Read, &error))?;
        check_snapshot(meta, &applied)
            .map_err(|detail| violation(subject.clone(), ErrorVerb::Read, detail))?;

        let _one_writer = self.machine.apply_lock.lock().await;
        // This node never applied what the snapshot covers: the records those entries made
        // are not in its archive (until a backfill from a peer brings them).
        let last_index = meta.last_log_id.map_or(0, |log_id| log_id.index);
        self.machine
            .cdrs
            .mark_incomplete(applied.state.time_ms(), last_index)
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Write, &error))?;
        // Durable first: once the state is published, openraft may purge the log behind it,
        // including entries whose records were appended but not yet synced.
        self.machine
            .cdrs
            .sync()
            .await
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Write, &error))?;
        self.machine.snapshots.install(meta, &data).await?;
        self.machine
            .cdrs
            .retain_since(retained_since_ms(&applied.state));
        self.machine.publish(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        Ok(self.machine.snapshots.load()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot of the state as it was when openraft asked for the builder; runs
/// alongside apply without blocking it.
pub struct SnapshotBuilder {
    applied: Arc<AppliedState>,
    /// Log bytes counted since the last snapshot when `applied` was taken: what this
    /// snapshot lets be purged.
    covered_bytes: u64,
    machine: Arc<Machine>,
}

impl fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("last_applied", &self.applied.last_applied)
            .finish_non_exhaustive()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        // Once the snapshot is reported built openraft may purge the log it covers, the only
        // other source of the records those entries made: they are synced first. Every record
        // of the state being snapshotted was appended before that state was published.
        self.machine.cdrs.sync().await.map_err(|error| {
            storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, &error)
        })?;
        self.machine
            .snapshots
            .build(&self.applied, self.covered_bytes)
            .await
    }
}
