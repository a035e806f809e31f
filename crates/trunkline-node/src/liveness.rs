//! Which members are alive, as this node sees them: the input to probe assignment.
//!
//! Every node pings every other voter a few times a second over the peer listener. A member
//! that answered within the liveness timeout is live; this node always counts itself. Each
//! node computes the assignment from its own view, so during a partition two nodes may both
//! probe a gateway for a moment (harmless: transitions are compare-and-set in the log) and
//! after a member dies its gateways move within the timeout plus one supervisor tick.
//!
//! Learners (edge read replicas) neither probe nor count: they may sit in other networks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tonic::transport::Channel;
use trunkline_api::v1::internal::raft_service_client::RaftServiceClient;
use trunkline_store::NodeId;

use crate::{
    cluster::Cluster,
    network::{self, PeerCall},
};

/// How often each peer is pinged.
pub const PING_INTERVAL: Duration = Duration::from_millis(150);
/// How long one ping may take.
pub const PING_TIMEOUT: Duration = Duration::from_millis(250);

struct Peer {
    addr: String,
    client: RaftServiceClient<Channel>,
    /// Last answer, or when the peer was first seen (a new member gets the benefit of the
    /// doubt for one timeout instead of having its gateways taken at once).
    last_seen: Instant,
}

pub struct Liveness {
    cluster: Arc<Cluster>,
    timeout: Duration,
    peers: Mutex<HashMap<NodeId, Peer>>,
}

impl Liveness {
    /// Starts pinging; the task ends when the node shuts down (the returned Arc is dropped
    /// by everyone else).
    pub fn start(cluster: Arc<Cluster>, timeout: Duration) -> Arc<Liveness> {
        let liveness = Arc::new(Liveness {
            cluster,
            timeout,
            peers: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&liveness);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PING_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(liveness) = weak.upgrade() else {
                    return;
                };
                liveness.ping_all().await;
            }
        });
        liveness
    }

    /// The voters, other than this node, with their peer addresses.
    fn other_voters(&self) -> Vec<(NodeId, String)> {
        let metrics = self.cluster.metrics();
        let membership = metrics.membership_config.membership();
        membership
            .voter_ids()
            .filter(|id| *id != self.cluster.node_id)
            .filter_map(|id| {
                membership
                    .get_node(&id)
                    .map(|node| (id, node.peer_addr.clone()))
            })
            .collect()
    }

    fn is_voter(&self) -> bool {
        let metrics = self.cluster.metrics();
        metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == self.cluster.node_id)
    }

    async fn ping_all(&self) {
        let voters = self.other_voters();
        let clients: Vec<(NodeId, RaftServiceClient<Channel>)> = {
            let Ok(mut peers) = self.peers.lock() else {
                return;
            };
            peers.retain(|id, _| voters.iter().any(|(voter, _)| voter == id));
            voters
                .iter()
                .filter_map(|(id, addr)| {
                    let fresh = peers.get(id).is_none_or(|peer| &peer.addr != addr);
                    if fresh {
                        let client = self.cluster.dialer.client(*id, addr).ok()?;
                        peers.insert(
                            *id,
                            Peer {
                                addr: addr.clone(),
                                client,
                                last_seen: Instant::now(),
                            },
                        );
                    }
                    peers.get(id).map(|peer| (*id, peer.client.clone()))
                })
                .collect()
        };
        let mut pings = tokio::task::JoinSet::new();
        for (id, mut client) in clients {
            let cluster_name = self.cluster.cluster_name.clone();
            let own_id = self.cluster.node_id;
            pings.spawn(async move {
                let answered: Result<NodeId, tonic::Status> = network::call(
                    &mut client,
                    &cluster_name,
                    PeerCall::Ping,
                    &own_id,
                    PING_TIMEOUT,
                )
                .await;
                (id, matches!(answered, Ok(answered) if answered == id))
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = pings.join_next().await {
            if let Ok(result) = joined {
                results.push(result);
            }
        }
        if let Ok(mut peers) = self.peers.lock() {
            let now = Instant::now();
            for (id, alive) in results {
                if alive {
                    if let Some(peer) = peers.get_mut(&id) {
                        peer.last_seen = now;
                    }
                }
            }
        }
    }

    /// The voters this node believes alive, itself included when it is a voter, in id order.
    pub fn live_voters(&self) -> Vec<NodeId> {
        let mut live = Vec::new();
        if self.is_voter() {
            live.push(self.cluster.node_id);
        }
        if let Ok(peers) = self.peers.lock() {
            live.extend(
                peers
                    .iter()
                    .filter(|(_, peer)| peer.last_seen.elapsed() <= self.timeout)
                    .map(|(id, _)| *id),
            );
        }
        live.sort_unstable();
        live
    }
}
