//! What the store measures for the node's `/metrics`: applying entries, the commit index,
//! snapshots. Updated where the work happens; read when `/metrics` is scraped.

use trunkline_metrics::{Counter, Gauge, Histogram, LATENCY_BUCKETS, ROUND_TRIP_BUCKETS};

#[derive(Debug)]
pub struct StoreMetrics {
    /// Time to apply one run of committed entries openraft hands the state machine.
    pub apply_seconds: Histogram,
    /// Entries applied (blank and membership entries too).
    pub entries_applied: Counter,
    /// The last committed log index this node saved.
    pub committed_index: Gauge,
    /// Time to build (encode, seal, store and flush) a snapshot.
    pub snapshot_build_seconds: Histogram,
    /// Snapshots received from the leader and installed.
    pub snapshots_installed: Counter,
    /// Size of the current snapshot (the last built or installed), before sealing.
    pub snapshot_bytes: Gauge,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            apply_seconds: Histogram::new(LATENCY_BUCKETS),
            entries_applied: Counter::new(),
            committed_index: Gauge::new(),
            snapshot_build_seconds: Histogram::new(ROUND_TRIP_BUCKETS),
            snapshots_installed: Counter::new(),
            snapshot_bytes: Gauge::new(),
        }
    }
}
