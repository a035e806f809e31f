//! Keeps the log's time moving in a quiet cluster.
//!
//! Registration expiry is judged at the time of the last applied entry, so every node at the
//! same index agrees. When nothing is written for a while that time stands still and bindings
//! would outlive their expiry, so the leader appends a `Tick` whenever the log's time is more
//! than [`TICK_INTERVAL`] behind its clock and there are bindings to expire, or calls in
//! progress whose record is due to close.

use std::{sync::Arc, time::Duration};

use openraft::ServerState;
use trunkline_core::Command;

use crate::cluster::{now_ms, Cluster};

/// The most the log's time may lag the leader's clock while bindings exist.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

pub fn start(cluster: Arc<Cluster>) {
    let weak = Arc::downgrade(&cluster);
    drop(cluster);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TICK_INTERVAL / 4);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            if cluster.metrics().state != ServerState::Leader {
                continue;
            }
            let applied = cluster.reader.current();
            let now = now_ms();
            let idle_ms = now.saturating_sub(applied.state.time_ms());
            let has_bindings = applied
                .state
                .inbound()
                .registrations()
                .aors()
                .next()
                .is_some();
            // Calls in progress whose end never came are closed (archived) by log time too.
            let records_due = applied.state.cdrs().expiry_due(now);
            if !(has_bindings || records_due) || idle_ms < TICK_INTERVAL.as_millis() as u64 {
                continue;
            }
            if let Err(error) = cluster.write(Command::Tick).await {
                tracing::debug!(%error, "tick not written");
            }
        }
    });
}
