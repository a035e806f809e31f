//! A faster, calmer failover: when the leader falls silent, one chosen survivor calls the
//! election as soon as the other voters may grant it, instead of every survivor waiting out
//! its own timer (and two of them splitting the vote when they time out together).
//!
//! openraft 0.9 has a follower call an election `lease + election_timeout` after the last
//! heartbeat it saw (the lease is `election_timeout_max`; the random timeout is drawn once per
//! node, not per election), checked on a tick of 1.5 heartbeats. A voter refuses to vote
//! while its lease on the last leader holds, so the earliest an election can succeed is one
//! lease after the last heartbeat. The *successor* — the voter with the lowest id other than
//! the silent leader — calls it then, plus a margin. A successor whose log is behind another
//! survivor's is refused, so the next voter by id calls one a stagger later if the old leader
//! is still the last it knows (it refused the first), and so on; openraft's own timer stays
//! the fallback behind them all.
//!
//! Nothing here decides who leads: it only starts an ordinary Raft election earlier on one
//! node, which the others grant or refuse by Raft's rules.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use trunkline_store::NodeId;

use crate::cluster::Cluster;

/// How often the successor checks on the leader.
const CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// `node`'s place in the order of succession after `leader`: 0 for the lowest-id voter other
/// than the leader, 1 for the next, and so on; `None` for the leader and for non-voters.
pub fn succession_rank(
    node: NodeId,
    leader: NodeId,
    voters: impl IntoIterator<Item = NodeId>,
) -> Option<usize> {
    let mut others: Vec<NodeId> = voters
        .into_iter()
        .filter(|voter| *voter != leader)
        .collect();
    others.sort_unstable();
    others.iter().position(|voter| *voter == node)
}

/// When the voters may grant an election (the lease) and how this node staggers its call.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// openraft's leader lease: its `election_timeout_max`.
    pub lease: Duration,
    /// Past the lease, for the voters' last heartbeats arriving a little apart.
    pub margin: Duration,
    /// Between one rank's call and the next's.
    pub stagger: Duration,
    /// After a call, the least time before this node calls again.
    pub retry: Duration,
}

impl Timing {
    /// How long the leader must have been silent before the voter of `rank` calls.
    pub fn call_after(&self, rank: usize) -> Duration {
        let rank = u32::try_from(rank).unwrap_or(u32::MAX);
        self.lease + self.margin + self.stagger.saturating_mul(rank)
    }
}

/// Starts the check; it ends when Raft stops.
pub fn start(cluster: Arc<Cluster>, timing: Timing) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_call: Option<Instant> = None;
        loop {
            ticker.tick().await;
            if cluster.is_stopped() {
                return;
            }
            let Some(silent_for) = cluster.since_leader_contact() else {
                continue;
            };
            if silent_for < timing.call_after(0)
                || last_call.is_some_and(|at| at.elapsed() < timing.lease + timing.retry)
            {
                continue;
            }
            // Read under the watch's borrow, dropped before any await.
            // The old leader is still the last one known here: no candidate this node voted
            // for, or that it heard of with a greater term, is in the way.
            let rank = {
                let metrics = cluster.raft.metrics();
                let metrics = metrics.borrow();
                match metrics.current_leader {
                    Some(leader) if leader != cluster.node_id => succession_rank(
                        cluster.node_id,
                        leader,
                        metrics.membership_config.membership().voter_ids(),
                    )
                    .map(|rank| (leader, rank)),
                    _ => None,
                }
            };
            let Some((leader, rank)) = rank else {
                continue;
            };
            if silent_for < timing.call_after(rank) {
                continue;
            }
            last_call = Some(Instant::now());
            tracing::info!(
                %leader,
                rank,
                silent_ms = silent_for.as_millis() as u64,
                "the leader fell silent; this node is its successor and calls an election"
            );
            if let Err(error) = cluster.raft.trigger().elect().await {
                tracing::warn!(%error, "could not call an election");
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn succession_goes_by_id_among_the_voters_other_than_the_leader() {
        assert_eq!(succession_rank(2, 1, [1, 2, 3]), Some(0));
        assert_eq!(succession_rank(3, 1, [3, 1, 2]), Some(1));
        assert_eq!(succession_rank(1, 3, [1, 2, 3]), Some(0));
        assert_eq!(succession_rank(5, 2, [5, 4, 3, 2, 1]), Some(3));
        // A node that is not a voter (a learner) has no rank, nor has the leader itself.
        assert_eq!(succession_rank(4, 1, [1, 2, 3]), None);
        assert_eq!(succession_rank(1, 1, [1]), None);
    }

    #[test]
    fn each_rank_calls_a_stagger_after_the_one_before_and_none_within_the_lease() {
        let timing = Timing {
            lease: Duration::from_millis(300),
            margin: Duration::from_millis(50),
            stagger: Duration::from_millis(100),
            retry: Duration::from_millis(300),
        };
        assert_eq!(timing.call_after(0), Duration::from_millis(350));
        assert_eq!(timing.call_after(2), Duration::from_millis(550));
        assert!(timing.call_after(usize::MAX) >= timing.lease);
    }
}
