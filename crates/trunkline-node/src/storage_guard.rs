//! The node's side of storage failures: keeping client writes from filling the disk, and
//! noticing when the Raft core has stopped on a storage error.
//!
//! sled and openraft treat a failed write (ENOSPC, EIO, a checksum that fails at run time) as
//! fatal: the Raft core stops and never starts again in this process. Before this module
//! existed such a node lingered as a zombie: health SERVING, every write INTERNAL, and a
//! SIGTERM that never finished. Now:
//!
//! - [`DiskReserve`] refuses client writes with RESOURCE_EXHAUSTED while the data folder's
//!   disk has less free space than the configured reserve, so writes never drive the store to
//!   ENOSPC. The log's own housekeeping (ticks, health transitions) is small and goes on.
//! - [`snapshot_by_log_size`] builds a snapshot once the log grew by a number of bytes, not
//!   only by a number of entries: sled 0.34 keeps the values of the log it holds in memory
//!   until they are purged, and a purge follows a snapshot, so without it 10,000 rate-deck
//!   chunks (2.5 GB) stayed in memory and the first purge stalled writes for seconds.
//! - [`storage_failure`] completes when the Raft core has stopped on an error; the server then
//!   reports NOT_SERVING, keeps answering lookups from the last applied state for a moment so
//!   proxies move away, and exits non-zero so a supervisor restarts it.

use std::path::PathBuf;

use openraft::Raft;
use trunkline_core::health::HealthCommand;
use trunkline_core::Command;
use trunkline_store::TypeConfig;

use crate::error::ClusterError;

/// Keeps client writes from taking the last free space of the data folder's disk.
#[derive(Debug)]
pub struct DiskReserve {
    data_dir: PathBuf,
    /// Free bytes to keep; 0 turns the check off.
    min_free_bytes: u64,
    /// The last reading of the free space, and when it was taken.
    last_reading: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

/// How long a reading of the free space stands in for the next writes while the disk has
/// more than twice the reserve free: at thousands of writes a second, a `statvfs` each was
/// measurable, and no 100 ms of writes gets near a margin that large.
const FREE_SPACE_READING_LIFETIME: std::time::Duration = std::time::Duration::from_millis(100);

impl DiskReserve {
    pub fn new(data_dir: PathBuf, min_free_bytes: u64) -> Self {
        DiskReserve {
            data_dir,
            min_free_bytes,
            last_reading: std::sync::Mutex::new(None),
        }
    }

    /// Free bytes now, or from a reading of the last [`FREE_SPACE_READING_LIFETIME`] that
    /// showed more than twice the reserve.
    fn free_space(&self) -> std::io::Result<u64> {
        let now = std::time::Instant::now();
        let mut last = self
            .last_reading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((read_at, free)) = *last {
            if now.duration_since(read_at) < FREE_SPACE_READING_LIFETIME
                && free / 2 >= self.min_free_bytes
            {
                return Ok(free);
            }
        }
        let free = trunkline_store::free_space(&self.data_dir)?;
        *last = Some((now, free));
        Ok(free)
    }

    /// Free bytes on the data folder's disk (`None` when they can't be read), and the reserve.
    pub fn status(&self) -> (Option<u64>, u64) {
        (
            trunkline_store::free_space(&self.data_dir).ok(),
            self.min_free_bytes,
        )
    }

    /// Refuses `command` when it is a client write and the disk is below the reserve.
    pub fn check(&self, command: &Command) -> Result<(), ClusterError> {
        if self.min_free_bytes == 0 || is_housekeeping(command) {
            return Ok(());
        }
        let free = match self.free_space() {
            Ok(free) => free,
            Err(error) => {
                // Not knowing is no reason to refuse: the store reports a real failure itself.
                tracing::debug!(%error, "can't read the data folder's free space");
                return Ok(());
            }
        };
        if free >= self.min_free_bytes {
            return Ok(());
        }
        Err(ClusterError::ResourceExhausted(format!(
            "the disk of the data folder {} has {} free, below the reserve of {} \
             (storage.min_free_bytes): writes are refused until space is freed; reads and \
             lookups go on; the write was not applied",
            self.data_dir.display(),
            mebibytes(free),
            mebibytes(self.min_free_bytes)
        )))
    }
}

/// The log's own upkeep: small entries the cluster needs to stay correct (registration
/// expiry moves with ticks; health changes keep calls off dead gateways).
fn is_housekeeping(command: &Command) -> bool {
    match command {
        Command::Tick | Command::Health(HealthCommand::Transition { .. }) => true,
        Command::Batch(writes) => writes.iter().all(|write| is_housekeeping(&write.command)),
        _ => false,
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// How often [`snapshot_by_log_size`] looks at the log's growth.
const LOG_SIZE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
/// After asking for a snapshot, the longest wait before asking again if none was stored
/// (one may be refused while another is being built or installed).
const SNAPSHOT_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Log appended since the last snapshot past which a deck commit builds one at once.
pub const SNAPSHOT_AFTER_DECK_COMMIT_BYTES: u64 = 1024 * 1024;

/// Asks Raft for a snapshot whenever `threshold_bytes` of log were appended since the last
/// one was stored (0: never; the entry-count policy still applies), and when a rate deck was
/// committed with at least [`SNAPSHOT_AFTER_DECK_COMMIT_BYTES`] of log behind it: the
/// import's chunks in the log are dead once the deck is committed, but sled holds them in
/// memory, and a restart would stage them all again, until a snapshot lets them be purged.
/// Ends when Raft stops.
pub async fn snapshot_by_log_size(
    raft: Raft<TypeConfig>,
    growth: trunkline_store::LogGrowth,
    threshold_bytes: u64,
    state: trunkline_store::StateReader,
) {
    if threshold_bytes == 0 {
        return;
    }
    let decks_version = || state.current().state.routing().decks_version();
    let after_commit_bytes = SNAPSHOT_AFTER_DECK_COMMIT_BYTES.min(threshold_bytes);
    let mut decks_seen = decks_version();
    let mut commit_pending = false;
    let mut asked_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(LOG_SIZE_CHECK_INTERVAL).await;
        let grown = growth.bytes_since_snapshot();
        let decks_now = decks_version();
        if decks_now != decks_seen {
            decks_seen = decks_now;
            commit_pending = true;
        }
        let reason = if grown >= threshold_bytes {
            "the log grew past raft.snapshot_after_log_bytes since the last snapshot"
        } else if commit_pending && grown >= after_commit_bytes {
            "a rate deck was committed: compacting its import out of the log"
        } else {
            // A commit with little log behind it (or one a snapshot already covers) leaves
            // nothing worth compacting.
            commit_pending = false;
            asked_at = None;
            continue;
        };
        if asked_at.is_some_and(|at| at.elapsed() < SNAPSHOT_RETRY_AFTER) {
            continue;
        }
        tracing::info!(
            grown_bytes = grown,
            threshold_bytes,
            "{reason}: building a snapshot"
        );
        if raft.trigger().snapshot().await.is_err() {
            // The core stopped: nothing more to snapshot.
            return;
        }
        commit_pending = false;
        asked_at = Some(tokio::time::Instant::now());
    }
}

/// Completes when the Raft core has stopped because of an error (a storage failure: openraft
/// stops on any), with what went wrong. Never completes while the core runs or after a clean
/// shutdown.
pub async fn storage_failure(raft: &Raft<TypeConfig>) -> String {
    let mut metrics = raft.metrics();
    loop {
        // Copied out: a borrow of the watch must never be held across an await.
        let running = metrics.borrow_and_update().running_state.clone();
        if let Err(fatal) = running {
            if !matches!(fatal, openraft::error::Fatal::Stopped) {
                return fatal.to_string();
            }
        }
        if metrics.changed().await.is_err() {
            // The core is gone; the watch's last value said why, and it was not an error.
            return std::future::pending().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_core::settings::SettingsCommand;

    fn set() -> Command {
        Command::Settings(SettingsCommand::Set {
            key: "k".into(),
            value: "v".into(),
        })
    }

    #[test]
    fn a_client_write_is_refused_below_the_reserve_and_upkeep_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let free = trunkline_store::free_space(dir.path()).unwrap();
        let over = DiskReserve::new(dir.path().to_owned(), free.saturating_mul(2).max(1));
        let error = over.check(&set()).unwrap_err();
        assert!(
            matches!(error, ClusterError::ResourceExhausted(_)),
            "{error}"
        );
        assert!(
            error.to_string().contains("storage.min_free_bytes"),
            "{error}"
        );
        assert!(over.check(&Command::Tick).is_ok());
        let under = DiskReserve::new(dir.path().to_owned(), 1);
        assert!(under.check(&set()).is_ok());
        let off = DiskReserve::new(dir.path().to_owned(), 0);
        assert!(off.check(&set()).is_ok());
    }
}
