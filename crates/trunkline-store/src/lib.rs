//! openraft storage for Trunkline on sled: the Raft log, the vote, the state machine and its
//! snapshots.
//!
//! This is the only crate that knows sled. Every byte written to sled goes through
//! [`codec`], the one place where encryption at rest will be added.
//!
//! [`Store::open`] opens (or creates) a node's data folder, checking first, without writing
//! anything, that the folder belongs to the expected cluster and node. It hands out the two
//! halves openraft wants as separate owned values: [`LogStore`] (log and vote, durable before
//! acknowledging) and [`StateMachineStore`] (the applied state in memory, durable through
//! snapshots). Readers get the applied state from a [`StateReader`] without ever waiting on the
//! apply path.

use std::fmt;

use serde::{Deserialize, Serialize};

mod acknowledged;
pub mod backup;
mod cdr_archive;
pub mod codec;
mod database;
mod error;
mod folder;
mod log_store;
mod metrics;
mod recover;
pub mod seal;
mod snapshot_store;
mod state_machine;
mod store;
mod verify;

pub use acknowledged::{read_acknowledged, Acknowledged};
pub use cdr_archive::{ArchiveStats, ArchivedCdr, Backfill, BackfillOutcome, CdrArchive};
pub use database::{ResealProgress, DEFAULT_CACHE_BYTES, MIN_CACHE_BYTES, RESEAL_PROGRESS_EVERY};
pub use error::StoreError;
pub use folder::{Identity, MAX_CLUSTER_NAME_BYTES};
pub use log_store::{LogStore, MAX_READ_BYTES};
pub use metrics::StoreMetrics;
pub use recover::{force_new_cluster, inspect, recover, Forced, Recovered, Survivor};
pub use state_machine::{AppliedState, SnapshotBuilder, StateMachineStore, StateReader};
pub use store::{LogGrowth, Resealer, Store};

/// Bytes free for this process on the disk holding `path` (what `df` shows as available).
pub fn free_space(path: &std::path::Path) -> std::io::Result<u64> {
    fs2::available_space(path)
}

/// Bytes of every file under `path` (0 for what can't be read): a data folder's disk use.
pub fn folder_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => folder_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A node's id in the cluster; chosen by the operator, unique and never reused.
pub type NodeId = u64;

/// How to reach a member of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The peer listener: Raft traffic and writes forwarded between nodes.
    pub peer_addr: String,
    /// The client listener: SIP proxies and trunkctl.
    pub api_addr: String,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer={} api={}", self.peer_addr, self.api_addr)
    }
}

openraft::declare_raft_types!(
    /// Trunkline's Raft types: requests and responses of the core state machine.
    pub TypeConfig:
        D = trunkline_core::Request,
        R = trunkline_core::Response,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);
