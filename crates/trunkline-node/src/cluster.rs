//! The node's handle on the cluster: proposes writes (forwarding them to the leader when this
//! node does not lead), serves reads from local applied state at the consistency asked for,
//! and changes membership.
//!
//! Forwarding never risks applying a write twice: a write is re-sent to another node only
//! when it is certain it was not proposed (the node refused it before proposing, or no
//! connection could be made). When the outcome is unknown (leadership lost while the write
//! was in flight, a reply that never came) the caller is told so and decides.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use trunkline_core::audit::Actor;
use trunkline_core::auth::{
    tokens::{Minted, TokenCommand, TokenRecord},
    Role, Scope,
};

use openraft::{
    error::{ChangeMembershipError, ClientWriteError, InitializeError, RaftError},
    ChangeMembers, Raft, RaftMetrics, ServerState, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use trunkline_api::v1::internal::raft_service_client::RaftServiceClient;
use trunkline_core::{sessions::IdempotencyKey, BatchedWrite, Command, Request, Response};
use trunkline_store::{AppliedState, Node, NodeId, StateReader, TypeConfig};

use crate::storage_guard::DiskReserve;
use crate::{
    error::ClusterError,
    group_commit, limits,
    metrics::NodeMetrics,
    network::{self, PeerCall},
    wire,
};
use tracing::Instrument;

/// A request only the leader can carry out; followers forward it over the peer listener.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LeaderRequest {
    /// A change, with the operator who asked for it when one did (for the audit log), and
    /// the client's idempotency key for it when it sent one.
    Write(Command, Option<Box<Actor>>, Option<IdempotencyKey>),
    AddLearner {
        node_id: NodeId,
        node: Node,
    },
    Promote {
        node_id: NodeId,
    },
    Remove {
        node_id: NodeId,
    },
    /// The log index a linearizable read must wait for.
    ReadIndex,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LeaderReply {
    Written { response: Response, log_index: u64 },
    MembershipChanged { log_index: u64 },
    ReadIndex { log_index: u64 },
}

/// What a node says about itself before it is added to the cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    pub node_id: NodeId,
    /// True when the node already has Raft state: it belongs to a cluster already.
    pub initialized: bool,
}

/// How fresh a read must be; see `ReadConsistency` in proto/trunkline/v1/common.proto.
#[derive(Clone, Copy, Debug, Default)]
pub struct Consistency {
    pub min_applied_index: u64,
    pub linearizable: bool,
    pub max_staleness_ms: u64,
}

/// Where a read was served from and how fresh it is.
#[derive(Clone, Copy, Debug)]
pub struct ReadState {
    pub node_id: NodeId,
    pub applied_index: u64,
    pub leader_id: Option<NodeId>,
    pub staleness_ms: u64,
}

/// Staleness reported when this node has not heard from any leader since it started.
pub const STALENESS_UNKNOWN: u64 = u64::MAX;

/// The parts of Raft's metrics a lookup's read state needs, as atomics.
#[derive(Debug, Default)]
struct Pulse {
    /// The known leader's id plus one; 0: none known.
    leader: AtomicU64,
    /// This node leads.
    leading: AtomicBool,
    /// The Raft core stopped (a storage error, shutdown).
    stopped: AtomicBool,
    /// Milliseconds since a quorum acknowledged this leader, as last published (what
    /// `staleness_ms` reads from the metrics); 0 when not known.
    since_quorum_ack: AtomicU64,
}

impl Pulse {
    fn publish(&self, metrics: &RaftMetrics<NodeId, Node>) {
        self.leader.store(
            metrics
                .current_leader
                .map_or(0, |leader| leader.saturating_add(1)),
            Ordering::Relaxed,
        );
        self.leading
            .store(metrics.state == ServerState::Leader, Ordering::Relaxed);
        self.stopped
            .store(metrics.running_state.is_err(), Ordering::Relaxed);
        self.since_quorum_ack.store(
            metrics.millis_since_quorum_ack.unwrap_or(0),
            Ordering::Relaxed,
        );
    }
}

/// Keeps `pulse` in step with Raft's metrics until the core is gone. The borrow of the watch
/// is dropped before every await.
async fn follow_metrics(
    mut metrics: tokio::sync::watch::Receiver<RaftMetrics<NodeId, Node>>,
    pulse: Arc<Pulse>,
    meters: Arc<NodeMetrics>,
) {
    while metrics.changed().await.is_ok() {
        let (term, leader) = {
            let current = metrics.borrow_and_update();
            pulse.publish(&current);
            (current.current_term, current.current_leader)
        };
        meters.raft_observed(term, leader);
    }
    pulse.stopped.store(true, Ordering::Relaxed);
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

pub struct Cluster {
    pub node_id: NodeId,
    pub cluster_name: String,
    /// How other members and clients reach this node.
    pub self_node: Node,
    pub raft: Raft<TypeConfig>,
    pub reader: StateReader,
    pub log_store: trunkline_store::LogStore,
    /// When an AppendEntries from a leader last succeeded here (ms after `epoch`, plus one;
    /// 0: never): the bound on how stale this node's state may be.
    leader_contact: AtomicU64,
    /// What each answer's read state needs of Raft's metrics, kept by a task that follows
    /// them: a lookup reads a few atomics instead of cloning the metrics, membership and all.
    pulse: Arc<Pulse>,
    /// The origin of the millisecond instants above.
    epoch: Instant,
    /// Connections to the leaders writes were forwarded to, by node id and address.
    forward_clients: Mutex<HashMap<(NodeId, String), RaftServiceClient<Channel>>>,
    /// Refuses client writes while the data folder's disk is below its reserve.
    disk: DiskReserve,
    /// How this node reaches the others (TLS with its certificate, or plaintext).
    pub dialer: network::Dialer,
    /// Peer messages refused since start (malformed, or failing `peer_check`), shown in the
    /// cluster status: a count that grows says someone sends this node bad Raft traffic.
    refused_peer_messages: AtomicU64,
    /// What the node counts as it works, for `/metrics`.
    pub meters: Arc<NodeMetrics>,
    /// Where writes queue to be proposed together ([`crate::group_commit`]), once
    /// [`Cluster::start_group_commit`] ran; before that each write is proposed alone.
    group_commit: std::sync::OnceLock<tokio::sync::mpsc::Sender<group_commit::Pending>>,
}

impl Cluster {
    pub fn new(
        identity: trunkline_store::Identity,
        self_node: Node,
        raft: Raft<TypeConfig>,
        reader: StateReader,
        log_store: trunkline_store::LogStore,
        disk: DiskReserve,
        dialer: network::Dialer,
    ) -> Cluster {
        let epoch = Instant::now();
        let pulse = Arc::new(Pulse::default());
        pulse.publish(&raft.metrics().borrow());
        let meters = Arc::new(NodeMetrics::default());
        tokio::spawn(follow_metrics(
            raft.metrics(),
            pulse.clone(),
            meters.clone(),
        ));
        Cluster {
            node_id: identity.node_id,
            cluster_name: identity.cluster_name,
            self_node,
            raft,
            reader,
            log_store,
            leader_contact: AtomicU64::new(0),
            pulse,
            epoch,
            forward_clients: Mutex::new(HashMap::new()),
            disk,
            dialer,
            refused_peer_messages: AtomicU64::new(0),
            meters,
            group_commit: std::sync::OnceLock::new(),
        }
    }

    /// From now on, writes that queue while others are in flight share Raft entries. The
    /// task holds the cluster weakly and ends when the cluster is dropped.
    pub fn start_group_commit(self: &Arc<Self>) {
        self.group_commit
            .get_or_init(|| group_commit::start(Arc::downgrade(self)));
    }

    /// A snapshot of Raft's metrics. Cloned out at once: a borrow of the watch must never be
    /// held across an await, or Raft's core blocks on it.
    pub fn metrics(&self) -> RaftMetrics<NodeId, Node> {
        self.raft.metrics().borrow().clone()
    }

    /// The Raft core stopped (a storage error, or shutdown): it will neither lead nor vote.
    pub fn is_stopped(&self) -> bool {
        self.pulse.stopped.load(Ordering::Relaxed)
    }

    pub fn record_leader_contact(&self) {
        self.leader_contact
            .store(millis_since(self.epoch) + 1, Ordering::Relaxed);
    }

    /// How long ago an AppendEntries from a leader last succeeded here, if one ever did.
    pub fn since_leader_contact(&self) -> Option<Duration> {
        match self.leader_contact.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_millis(
                millis_since(self.epoch).saturating_sub(at - 1),
            )),
        }
    }

    fn staleness_since_leader_contact(&self) -> u64 {
        self.since_leader_contact()
            .map_or(STALENESS_UNKNOWN, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
    }

    /// The leader this node knows of and how stale its state may be (as
    /// [`Cluster::staleness_ms`]), from the pulse: no metrics cloned, no lock.
    pub fn leader_and_staleness(&self) -> (Option<NodeId>, u64) {
        let pulse = &self.pulse;
        let leader = pulse.leader.load(Ordering::Relaxed).checked_sub(1);
        let staleness = self.staleness(
            pulse.stopped.load(Ordering::Relaxed),
            pulse.leading.load(Ordering::Relaxed),
            pulse.since_quorum_ack.load(Ordering::Relaxed),
        );
        (leader, staleness)
    }

    /// The one rule for how stale this node's state may be: a leader's is as old as its
    /// quorum's last acknowledgement; anyone else's (and a stopped core's, which leads
    /// nothing) as old as its last contact with a leader.
    fn staleness(&self, stopped: bool, leading: bool, since_quorum_ack_ms: u64) -> u64 {
        if stopped || !leading {
            self.staleness_since_leader_contact()
        } else {
            since_quorum_ack_ms
        }
    }

    pub fn count_refused_peer_message(&self) {
        self.refused_peer_messages.fetch_add(1, Ordering::Relaxed);
    }

    /// Peer messages refused since this node started.
    pub fn refused_peer_messages(&self) -> u64 {
        self.refused_peer_messages.load(Ordering::Relaxed)
    }

    /// Milliseconds since this node last heard from a leader; 0 on a leader with a quorum.
    pub fn staleness_ms(&self, metrics: &RaftMetrics<NodeId, Node>) -> u64 {
        self.staleness(
            metrics.running_state.is_err(),
            metrics.state == ServerState::Leader,
            metrics.millis_since_quorum_ack.unwrap_or(0),
        )
    }

    pub async fn hello(&self) -> Hello {
        Hello {
            node_id: self.node_id,
            initialized: self.is_initialized().await,
        }
    }

    /// Whether this node has Raft state (a log or a vote from a cluster). Asked of Raft
    /// itself: the metrics may not show the log yet right after start-up.
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(true)
    }

    /// Makes this node the first voter of a new cluster.
    /// Makes this node the first member of a new cluster, chooses the route token key and
    /// creates the first admin token, whose text it returns (shown once, kept nowhere).
    pub async fn initialize(&self) -> Result<String, ClusterError> {
        let already = || {
            ClusterError::FailedPrecondition(format!(
                "node {} is already initialised as a member of cluster {:?}; a cluster is \
                 initialised once. To grow it, start the new node and run `trunkctl cluster join`",
                self.node_id, self.cluster_name
            ))
        };
        if self.is_initialized().await {
            return Err(already());
        }
        let members = BTreeMap::from([(self.node_id, self.self_node.clone())]);
        match self.raft.initialize(members).await {
            Ok(()) => {}
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => return Err(already()),
            Err(error) => return Err(ClusterError::internal(error)),
        }
        // The secret that authenticates route tokens, chosen once for the whole cluster.
        let key = rand::random::<[u8; trunkline_core::routing::ROUTE_TOKEN_KEY_BYTES]>().to_vec();
        self.write(Command::Routing(
            trunkline_core::routing::RoutingCommand::SetRouteTokenKey { key },
        ))
        .await?;
        self.create_first_admin_token().await
    }

    /// Creates the admin token a cluster starts with and returns its text.
    pub async fn create_first_admin_token(&self) -> Result<String, ClusterError> {
        let (command, minted) = new_token(
            "initial-admin".into(),
            Role::Admin,
            Scope::All,
            None,
            String::new(),
        );
        self.write(command).await?;
        Ok(minted.text)
    }

    /// Refuses a client write while this node's data disk is below its reserve. `write`
    /// checks the receiving node; the peer service checks the leader for a forwarded write.
    /// Free bytes on the data folder's disk (`None`: unknown) and the reserve kept.
    pub fn disk_status(&self) -> (Option<u64>, u64) {
        self.disk.status()
    }

    pub fn check_disk(&self, command: &Command) -> Result<(), ClusterError> {
        self.disk.check(command)
    }

    /// Proposes a command and returns what applying it produced, with its log index.
    pub async fn write(&self, command: Command) -> Result<(Response, u64), ClusterError> {
        self.propose(command, true)
            .instrument(crate::span!("raft_write"))
            .await
    }

    /// [`Cluster::write`] in an entry of its own, proposed at once: for writers that batch
    /// their own items (`batch.rs`: call records, admissions, call ends, registrations),
    /// whose entries are on the call path and must not queue behind other writes' batches.
    pub async fn write_alone(&self, command: Command) -> Result<(Response, u64), ClusterError> {
        self.propose(command, false)
            .instrument(crate::span!("raft_write"))
            .await
    }

    async fn propose(
        &self,
        command: Command,
        grouped: bool,
    ) -> Result<(Response, u64), ClusterError> {
        command.validate()?;
        let size = check_command_size(&command)?;
        self.check_disk(&command)?;
        // A change an operator asked for is recorded with who asked (see `auth::ACTOR`); the
        // few hundred bytes this adds stay within the peer message bound's headroom.
        let actor = crate::auth::current_actor();
        let key = crate::auth::next_idempotency_key();
        let Some(queue) = self.group_commit.get().filter(|_| grouped) else {
            return match self
                .submit(LeaderRequest::Write(command, actor.map(Box::new), key))
                .await?
            {
                LeaderReply::Written {
                    response: Response::Rejected(error),
                    ..
                } => Err(ClusterError::Domain(error)),
                LeaderReply::Written {
                    response,
                    log_index,
                } => Ok((response, log_index)),
                other => Err(ClusterError::internal(format!(
                    "unexpected reply to a write: {other:?}"
                ))),
            };
        };
        let bytes = size
            .saturating_add(actor.as_ref().and_then(wire::encoded_size).unwrap_or(0))
            .saturating_add(WRITE_FRAMING_BYTES);
        let (pending, answer) = group_commit::Pending::new(
            BatchedWrite {
                command,
                actor,
                idempotency: key,
            },
            bytes,
        );
        queue.try_send(pending).map_err(|error| match error {
            tokio::sync::mpsc::error::TrySendError::Full(_) => {
                ClusterError::ResourceExhausted(format!(
                    "node {} has {} writes waiting to be proposed; the write was not applied: \
                     retry shortly",
                    self.node_id,
                    group_commit::QUEUE_CAPACITY
                ))
            }
            tokio::sync::mpsc::error::TrySendError::Closed(_) => ClusterError::Unavailable(
                "the node is shutting down; the write was not applied".to_owned(),
            ),
        })?;
        // The batches ahead and this one's own proposal (which may wait for a leader and be
        // forwarded) are bounded; this only guards against a bug leaving it unanswered.
        match tokio::time::timeout(GROUP_COMMIT_WAIT, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(ClusterError::Unavailable(
                "the node stopped while the write was in flight; it may or may not have been \
                 applied: read the value back before retrying"
                    .to_owned(),
            )),
            Err(_) => Err(ClusterError::DeadlineExceeded(format!(
                "the write was not answered within {GROUP_COMMIT_WAIT:?}; it may or may not \
                 have been applied: read the value back before retrying"
            ))),
        }
    }

    /// Sends a leader-only request to the leader (this node or another) and follows the
    /// leader when it moves, as long as the request certainly was not proposed.
    pub async fn submit(&self, request: LeaderRequest) -> Result<LeaderReply, ClusterError> {
        let deadline = Instant::now() + limits::WRITE_TIMEOUT;
        for _ in 0..limits::WRITE_MAX_FORWARDS {
            // Read under the watch's borrow (dropped at once), not a copy of the metrics; and
            // not the pulse, which may trail Raft by a moment (just after initialising).
            let (current_leader, leader_node) = {
                let metrics = self.raft.metrics();
                let metrics = metrics.borrow();
                let leader = metrics.current_leader;
                let node = leader
                    .filter(|leader| *leader != self.node_id)
                    .and_then(|leader| metrics.membership_config.membership().get_node(&leader))
                    .cloned();
                (leader, node)
            };
            let result = match current_leader {
                Some(leader) if leader == self.node_id => self.lead(request.clone()).await,
                Some(leader) => match leader_node {
                    Some(node) => self.forward(leader, node, &request).await,
                    None => Err(ClusterError::NotLeader { leader_id: None }),
                },
                None => Err(ClusterError::NotLeader { leader_id: None }),
            };
            match result {
                Err(ClusterError::NotLeader { .. }) => {
                    if !self.wait_for_new_leader(current_leader, deadline).await {
                        break;
                    }
                }
                other => return other,
            }
        }
        let metrics = self.metrics();
        let leader_api_addr = metrics.current_leader.and_then(|leader| {
            metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .map(|node| node.api_addr.clone())
        });
        Err(ClusterError::NotApplied {
            message: format!(
                "node {} could not reach a leader within {:?}: the cluster may have lost its \
                 quorum, or this node is cut off (check `trunkctl cluster status` on each \
                 node); the request was not applied",
                self.node_id,
                limits::WRITE_TIMEOUT
            ),
            leader_api_addr,
        })
    }

    /// Waits until the known leader differs from `previous` (or a short pause passes when a
    /// leader is known but refused), returning false when the deadline passed.
    async fn wait_for_new_leader(&self, previous: Option<NodeId>, deadline: Instant) -> bool {
        let mut metrics = self.raft.metrics();
        let pause = Instant::now() + Duration::from_millis(50);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            {
                let current = metrics.borrow_and_update();
                if current.current_leader.is_some()
                    && (current.current_leader != previous || now >= pause)
                {
                    return true;
                }
            }
            let wait = deadline.min(now + Duration::from_millis(50)) - now;
            let _ = tokio::time::timeout(wait, metrics.changed()).await;
        }
    }

    /// Runs a leader-only request here. Refuses with `NotLeader` before doing anything when
    /// this node does not lead; once proposed, a lost leadership is an unknown outcome.
    pub async fn lead(&self, request: LeaderRequest) -> Result<LeaderReply, ClusterError> {
        let current_leader = self.raft.metrics().borrow().current_leader;
        if current_leader != Some(self.node_id) {
            return Err(ClusterError::NotLeader {
                leader_id: current_leader,
            });
        }
        match request {
            LeaderRequest::Write(command, actor, idempotency) => {
                let writes = match &command {
                    Command::Batch(writes) => writes.len(),
                    _ => 1,
                };
                let request = Request {
                    idempotency,
                    time_ms: now_ms(),
                    actor: actor.map(|actor| *actor),
                    command,
                };
                let proposed = Instant::now();
                let written =
                    tokio::time::timeout(limits::WRITE_TIMEOUT, self.raft.client_write(request))
                        .instrument(crate::span!("raft_propose", writes))
                        .await;
                self.meters
                    .proposal(writes, proposed, matches!(written, Ok(Ok(_))));
                let written = written
                    .map_err(|_| {
                        ClusterError::DeadlineExceeded(format!(
                        "the write was not committed within {:?}: the leader (node {}) may have \
                         lost its quorum; it may still be applied: read back before retrying",
                        limits::WRITE_TIMEOUT,
                        self.node_id
                    ))
                    })?
                    .map_err(|error| {
                        match error {
                    RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                        ClusterError::Unavailable(
                            "leadership changed while the write was in flight; it may or may \
                             not have been applied: read the value back before retrying"
                                .to_owned(),
                        )
                    }
                    // Proposed, then the core failed (a storage error stops it): the entry may
                    // be in the log, and may even be committed.
                    other => ClusterError::Unavailable(format!(
                        "the write may or may not have been applied: node {} failed while \
                         committing it ({other}); read the value back before retrying",
                        self.node_id
                    )),
                }
                    })?;
                Ok(LeaderReply::Written {
                    response: written.data,
                    log_index: written.log_id.index,
                })
            }
            LeaderRequest::ReadIndex => {
                let (read_log_id, _applied) =
                    self.raft.get_read_log_id().await.map_err(|error| {
                        ClusterError::Unavailable(format!(
                            "leadership could not be confirmed for a linearizable read: {error}"
                        ))
                    })?;
                Ok(LeaderReply::ReadIndex {
                    log_index: read_log_id.map_or(0, |log_id| log_id.index),
                })
            }
            LeaderRequest::AddLearner { node_id, node } => self.add_learner(node_id, node).await,
            LeaderRequest::Promote { node_id } => self.promote(node_id, &self.metrics()).await,
            LeaderRequest::Remove { node_id } => self.remove(node_id, &self.metrics()).await,
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        node: Node,
        request: &LeaderRequest,
    ) -> Result<LeaderReply, ClusterError> {
        let mut client = self.forward_client(leader, &node).await?;
        // The leader bounds its own work by these; the margin lets its answer arrive.
        let timeout = match request {
            LeaderRequest::Write(..) | LeaderRequest::ReadIndex => limits::WRITE_TIMEOUT,
            _ => limits::MEMBERSHIP_CHANGE_TIMEOUT,
        } + limits::FORWARD_MARGIN;
        let reply: Result<Result<LeaderReply, ClusterError>, tonic::Status> = network::call(
            &mut client,
            &self.cluster_name,
            PeerCall::Forward,
            request,
            timeout,
        )
        .instrument(crate::span!("forward_to_leader", leader))
        .await;
        match reply {
            Ok(result) => result,
            Err(status) => {
                // The connection was up, so the leader may have proposed the request.
                self.forget_forward_client(leader, &node);
                Err(ClusterError::Unavailable(format!(
                    "the leader (node {leader}) did not answer: {}; the request may or may not \
                     have been applied: read back before retrying",
                    status.message()
                )))
            }
        }
    }

    /// A connected client for the leader. A failure to connect means nothing was sent, so it
    /// is reported as `NotLeader`, which lets the request be retried.
    async fn forward_client(
        &self,
        leader: NodeId,
        node: &Node,
    ) -> Result<RaftServiceClient<Channel>, ClusterError> {
        let key = (leader, node.peer_addr.clone());
        if let Some(client) = self
            .forward_clients
            .lock()
            .ok()
            .and_then(|clients| clients.get(&key).cloned())
        {
            return Ok(client);
        }
        let client = self
            .dialer
            .connect(leader, &node.peer_addr)
            .await
            .map_err(|error| {
                tracing::debug!(%leader, %error, "can't connect to the leader to forward");
                ClusterError::NotLeader {
                    leader_id: Some(leader),
                }
            })?;
        if let Ok(mut clients) = self.forward_clients.lock() {
            clients.insert(key, client.clone());
        }
        Ok(client)
    }

    fn forget_forward_client(&self, leader: NodeId, node: &Node) {
        if let Ok(mut clients) = self.forward_clients.lock() {
            clients.remove(&(leader, node.peer_addr.clone()));
        }
    }

    /// The applied state to answer a read from, once it is as fresh as asked.
    pub async fn read(
        &self,
        consistency: Consistency,
    ) -> Result<(Arc<AppliedState>, ReadState), ClusterError> {
        let mut wait_for = consistency.min_applied_index;
        if consistency.linearizable {
            match self.submit(LeaderRequest::ReadIndex).await? {
                LeaderReply::ReadIndex { log_index } => wait_for = wait_for.max(log_index),
                other => {
                    return Err(ClusterError::internal(format!(
                        "unexpected reply to a read index: {other:?}"
                    )))
                }
            }
        }
        if wait_for > 0 {
            self.wait_applied(wait_for).await?;
        }
        let metrics = self.metrics();
        let staleness_ms = self.staleness_ms(&metrics);
        if consistency.max_staleness_ms > 0
            && !consistency.linearizable
            && staleness_ms > consistency.max_staleness_ms
        {
            return Err(ClusterError::FailedPrecondition(format!(
                "node {} has not heard from a leader for {} (max_staleness_ms is {}); ask \
                 another node or drop the bound",
                self.node_id,
                describe_staleness(staleness_ms),
                consistency.max_staleness_ms
            )));
        }
        let applied = self.reader.current();
        let read_state = ReadState {
            node_id: self.node_id,
            applied_index: applied.last_applied.map_or(0, |log_id| log_id.index),
            leader_id: metrics.current_leader,
            staleness_ms,
        };
        Ok((applied, read_state))
    }

    async fn wait_applied(&self, index: u64) -> Result<(), ClusterError> {
        let applied = |state: &AppliedState| state.last_applied.map_or(0, |log_id| log_id.index);
        if applied(&self.reader.current()) >= index {
            return Ok(());
        }
        self.raft
            .wait(Some(limits::READ_WAIT_TIMEOUT))
            .applied_index_at_least(Some(index), "read")
            .await
            .map_err(|_| {
                ClusterError::DeadlineExceeded(format!(
                    "node {} did not reach applied index {index} within {:?} (it is at {}); it \
                     may be cut off from the leader",
                    self.node_id,
                    limits::READ_WAIT_TIMEOUT,
                    applied(&self.reader.current())
                ))
            })?;
        Ok(())
    }

    async fn add_learner(&self, node_id: NodeId, node: Node) -> Result<LeaderReply, ClusterError> {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        if let Some(existing) = membership.get_node(&node_id) {
            let role = if membership.voter_ids().any(|id| id == node_id) {
                "voter"
            } else {
                "learner"
            };
            return Err(ClusterError::FailedPrecondition(format!(
                "node {node_id} is already a {role} of the cluster ({existing}); remove it first \
                 to re-add it with other addresses"
            )));
        }
        let mut client = self
            .dialer
            .client(node_id, &node.peer_addr)
            .map_err(|error| {
                ClusterError::Domain(trunkline_core::Error::invalid(
                    "peer_addr",
                    format!("{:?} is not host:port ({error})", node.peer_addr),
                ))
            })?;
        let hello: Result<Hello, tonic::Status> = network::call(
            &mut client,
            &self.cluster_name,
            PeerCall::Hello,
            &(),
            limits::JOIN_HELLO_TIMEOUT,
        )
        .await;
        let hello = hello.map_err(|status| match status.code() {
            tonic::Code::FailedPrecondition => ClusterError::FailedPrecondition(format!(
                "node at {} refused to join: {}",
                node.peer_addr,
                status.message()
            )),
            _ => ClusterError::Unavailable(format!(
                "can't reach node {node_id}'s peer listener at {} from the leader (node {}): {}. \
                 Start it first (trunkline serve with node_id = {node_id} and cluster_name = {:?}) \
                 and check the address",
                node.peer_addr,
                self.node_id,
                status.message(),
                self.cluster_name
            )),
        })?;
        if hello.node_id != node_id {
            return Err(ClusterError::FailedPrecondition(format!(
                "the node at {} is node {}, not node {node_id}: check the address and node_id",
                node.peer_addr, hello.node_id
            )));
        }
        if hello.initialized {
            return Err(ClusterError::FailedPrecondition(format!(
                "node {node_id} at {} already has Raft state (it was initialised or belonged to \
                 a cluster): start it with an empty data folder to join",
                node.peer_addr
            )));
        }
        let change = tokio::time::timeout(
            limits::MEMBERSHIP_CHANGE_TIMEOUT,
            // Not blocking on catch-up: a large state may take longer than a request may
            // wait. `cluster status` shows the learner's lag, and promote refuses a learner
            // that has replicated nothing.
            self.raft.add_learner(node_id, node, false),
        )
        .await
        .map_err(|_| membership_timeout(node_id))?;
        membership_reply(change)
    }

    async fn promote(
        &self,
        node_id: NodeId,
        metrics: &RaftMetrics<NodeId, Node>,
    ) -> Result<LeaderReply, ClusterError> {
        let membership = metrics.membership_config.membership();
        if membership.voter_ids().any(|id| id == node_id) {
            return Err(ClusterError::FailedPrecondition(format!(
                "node {node_id} is already a voter"
            )));
        }
        if membership.get_node(&node_id).is_none() {
            return Err(not_a_member(node_id));
        }
        let matched = metrics
            .replication
            .as_ref()
            .and_then(|replication| replication.get(&node_id).cloned().flatten());
        if matched.is_none() {
            return Err(ClusterError::FailedPrecondition(format!(
                "learner {node_id} has not replicated anything yet: check it is running and \
                 reachable, then promote it"
            )));
        }
        let change = tokio::time::timeout(
            limits::MEMBERSHIP_CHANGE_TIMEOUT,
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false),
        )
        .await
        .map_err(|_| membership_timeout(node_id))?;
        membership_reply(change)
    }

    async fn remove(
        &self,
        node_id: NodeId,
        metrics: &RaftMetrics<NodeId, Node>,
    ) -> Result<LeaderReply, ClusterError> {
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = if voters.contains(&node_id) {
            if voters.len() == 1 {
                return Err(ClusterError::FailedPrecondition(format!(
                    "node {node_id} is the last voter: removing it would leave no cluster. Join \
                     and promote another node first"
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
        } else if membership.get_node(&node_id).is_some() {
            ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
        } else {
            return Err(not_a_member(node_id));
        };
        let change = tokio::time::timeout(
            limits::MEMBERSHIP_CHANGE_TIMEOUT,
            self.raft.change_membership(change, false),
        )
        .await
        .map_err(|_| membership_timeout(node_id))?;
        membership_reply(change)
    }
}

fn not_a_member(node_id: NodeId) -> ClusterError {
    ClusterError::Domain(trunkline_core::Error::not_found(
        "member",
        node_id.to_string(),
    ))
}

fn membership_timeout(node_id: NodeId) -> ClusterError {
    ClusterError::DeadlineExceeded(format!(
        "the membership change for node {node_id} did not commit within {:?}; check `trunkctl \
         cluster status`",
        limits::MEMBERSHIP_CHANGE_TIMEOUT
    ))
}

type MembershipChange = Result<
    openraft::raft::ClientWriteResponse<TypeConfig>,
    RaftError<NodeId, ClientWriteError<NodeId, Node>>,
>;

fn membership_reply(change: MembershipChange) -> Result<LeaderReply, ClusterError> {
    match change {
        Ok(written) => Ok(LeaderReply::MembershipChanged {
            log_index: written.log_id.index,
        }),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            Err(ClusterError::Unavailable(
                "leadership changed during the membership change; check `trunkctl cluster \
                 members` before retrying"
                    .to_owned(),
            ))
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(error))) => match error {
            ChangeMembershipError::InProgress(_) => Err(ClusterError::FailedPrecondition(
                "another membership change is in progress; retry when it has finished".to_owned(),
            )),
            other => Err(ClusterError::FailedPrecondition(other.to_string())),
        },
        Err(other) => Err(ClusterError::internal(other)),
    }
}

/// Wall-clock time for stamping proposals; the state machine only ever sees it through the
/// log.
/// A command creating a token with fresh random id and secret, and the token made.
pub fn new_token(
    name: String,
    role: Role,
    scope: Scope,
    expires_ms: Option<u64>,
    created_by: String,
) -> (Command, Minted) {
    let minted = trunkline_core::auth::tokens::mint(rand::random(), rand::random());
    let record = TokenRecord {
        id: minted.id.clone(),
        name,
        role,
        scope,
        hash: minted.hash,
        created_ms: 0,
        expires_ms,
        revoked_ms: None,
        created_by,
    };
    (Command::Tokens(TokenCommand::Create(record)), minted)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Refuses a command too large to replicate (see [`limits::MAX_COMMAND_WIRE_BYTES`]) before
/// it is proposed: once in the log, an entry no AppendEntries can carry would stall
/// replication for good.
/// What a write adds to a batch's encoding beside its command and actor (its idempotency
/// key and the options' tags), rounded up.
const WRITE_FRAMING_BYTES: u64 = 64;

/// How long a write waits for its answer from the group-commit queue at most: the batches in
/// flight ahead of it and its own, each bounded by the write timeout and forwarding.
const GROUP_COMMIT_WAIT: Duration =
    Duration::from_secs(3 * limits::WRITE_TIMEOUT.as_secs() + limits::FORWARD_MARGIN.as_secs());

/// The command's encoded size, when one write may carry it.
fn check_command_size(command: &Command) -> Result<u64, ClusterError> {
    let size = crate::wire::encoded_size(command);
    if let Some(size) = size.filter(|size| *size <= limits::MAX_COMMAND_WIRE_BYTES) {
        return Ok(size);
    }
    Err(ClusterError::Domain(trunkline_core::Error::invalid(
        "request",
        format!(
            "the change encodes to {} bytes, more than one write may carry ({} bytes); \
             split it into smaller changes (rate decks are imported in chunks)",
            size.map_or_else(|| "too many".to_owned(), |size| size.to_string()),
            limits::MAX_COMMAND_WIRE_BYTES
        ),
    )))
}

fn describe_staleness(staleness_ms: u64) -> String {
    if staleness_ms == STALENESS_UNKNOWN {
        "ever since it started".to_owned()
    } else {
        format!("{staleness_ms} ms")
    }
}

/// What `cluster status` shows: this node as it sees itself and, when it leads, how far
/// each follower's log matches its own.
#[derive(Clone, Debug)]
pub struct ClusterStatus {
    pub node_id: NodeId,
    pub cluster_name: String,
    /// The Raft role in lower case (leader, follower, candidate, learner), or `stopped: why`
    /// once a storage error stopped the Raft core.
    pub state: String,
    /// None when no leader is known, or when the core is stopped (it leads nothing then,
    /// whatever its last metrics say).
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub staleness_ms: u64,
    pub membership: Arc<StoredMembership<NodeId, Node>>,
    /// Empty unless this node leads.
    pub followers: Vec<FollowerLag>,
    /// False until `cluster init` or a join gives the node a membership.
    pub initialized: bool,
    pub refused_peer_messages: u64,
}

/// How far a follower's log matches the leader's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerLag {
    pub node_id: NodeId,
    pub matched_index: u64,
    /// Entries the leader has that the follower is not known to have.
    pub lag_entries: u64,
}

impl Cluster {
    /// This node's status from its Raft metrics, its log and its counters.
    pub async fn status(&self) -> ClusterStatus {
        let metrics = self.metrics();
        let committed_index = self.committed_index().await;
        let last_log_index = metrics.last_log_index.unwrap_or(0);
        let followers = metrics
            .replication
            .iter()
            .flat_map(|replication| replication.iter())
            .filter(|(node_id, _)| **node_id != self.node_id)
            .map(|(node_id, matched)| {
                let matched_index = matched.map_or(0, |log_id| log_id.index);
                FollowerLag {
                    node_id: *node_id,
                    matched_index,
                    lag_entries: last_log_index.saturating_sub(matched_index),
                }
            })
            .collect();
        // A core stopped by a storage error still shows its last role and leader in the
        // metrics; say what it really is, and that it leads nothing.
        let (state, leader) = match &metrics.running_state {
            Err(fatal) => (format!("stopped: {fatal}"), None),
            Ok(()) => (
                format!("{:?}", metrics.state).to_lowercase(),
                metrics.current_leader,
            ),
        };
        ClusterStatus {
            node_id: self.node_id,
            cluster_name: self.cluster_name.clone(),
            state,
            leader,
            term: metrics.current_term,
            last_log_index,
            committed_index,
            applied_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
            snapshot_index: metrics.snapshot.map_or(0, |log_id| log_id.index),
            staleness_ms: self.staleness_ms(&metrics),
            membership: metrics.membership_config.clone(),
            followers,
            initialized: self.is_initialized().await,
            refused_peer_messages: self.refused_peer_messages(),
        }
    }

    /// The highest log index known committed on this node (0 when none).
    pub async fn committed_index(&self) -> u64 {
        let mut log_store = self.log_store.clone();
        match openraft::storage::RaftLogStorage::read_committed(&mut log_store).await {
            Ok(committed) => committed.map_or(0, |log_id| log_id.index),
            Err(error) => {
                tracing::warn!(%error, "can't read the committed index");
                0
            }
        }
    }
}

/// Keeps this node's own membership entry at the addresses it advertises: a node restored
/// from a backup (whose entry has none yet) or moved to new addresses sets its entry once it
/// leads. Only its own entry changes, never who votes. Ends when Raft stops.
pub async fn keep_own_address(cluster: Arc<Cluster>) {
    let mut metrics = cluster.raft.metrics();
    loop {
        let stale = {
            let current = metrics.borrow_and_update();
            current.current_leader == Some(cluster.node_id)
                && current
                    .membership_config
                    .membership()
                    .get_node(&cluster.node_id)
                    .is_some_and(|node| *node != cluster.self_node)
        };
        if stale {
            let nodes = BTreeMap::from([(cluster.node_id, cluster.self_node.clone())]);
            let changed = tokio::time::timeout(
                limits::WRITE_TIMEOUT,
                cluster
                    .raft
                    .change_membership(openraft::ChangeMembers::SetNodes(nodes), false),
            )
            .await;
            match changed {
                Ok(Ok(_)) => {
                    tracing::info!(
                        node = %cluster.self_node,
                        "set this node's addresses in the cluster's membership"
                    );
                    // The snapshot a joining node is sent carries the membership: one with
                    // the addresses, not the entry they replaced (which peers refuse).
                    if let Err(error) = cluster.raft.trigger().snapshot().await {
                        tracing::warn!(%error, "can't build a snapshot with the new addresses");
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "can't set this node's addresses in the membership yet")
                }
                Err(_) => {
                    tracing::warn!("setting this node's addresses in the membership timed out")
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_core::settings::SettingsCommand;

    fn set(value_bytes: usize) -> Command {
        Command::Settings(SettingsCommand::Set {
            key: "k".into(),
            value: "x".repeat(value_bytes),
        })
    }

    #[test]
    fn a_command_too_large_to_replicate_is_refused_before_it_is_proposed() {
        assert!(check_command_size(&set(64 * 1024)).is_ok());
        let error = check_command_size(&set(limits::MAX_COMMAND_WIRE_BYTES as usize)).unwrap_err();
        let status = tonic::Status::from(error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().starts_with("request:"),
            "{}",
            status.message()
        );
    }
}
