//! The server side of the peer listener: Raft messages from other members, requests forwarded
//! by followers (writes, membership changes, read indexes), the hello a leader sends before
//! adding this node, liveness pings, and live probe results for another node's ListHealth.
//!
//! Nothing a peer sends reaches Raft unchecked: with TLS, a message over a connection without
//! a member certificate of this cluster is refused, and a Raft message must come from the node
//! its certificate names (a member can't speak for another); traffic from a node of another
//! cluster is refused, payloads are decoded with a bound, and every field of every message is checked
//! by `peer_check` against this node's own view of the cluster. A refused message is answered
//! with the field it got wrong, counted (`refused_peer_messages` in the cluster status) and
//! logged at most once a second; it is never persisted.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use openraft::{
    raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest},
    ServerState,
};
use tonic::{Request, Response, Status};
use trunkline_api::v1::internal::{raft_service_server::RaftService, RaftPayload};
use trunkline_store::{NodeId, TypeConfig};

use crate::{
    backfill::{self, FetchRecordsRequest, FetchSlots},
    cluster::{Cluster, LeaderReply, LeaderRequest},
    error::ClusterError,
    health::HealthMonitor,
    limits,
    listener::ConnectionInfo,
    peer_check::{self, PeerView, Refusal, SnapshotProgress},
    wire,
};

pub struct PeerService {
    cluster: Arc<Cluster>,
    health: Arc<HealthMonitor>,
    /// The snapshot being received and how much of it arrived: chunks must come in order.
    snapshot_progress: Mutex<Option<SnapshotProgress>>,
    /// When a refusal was last logged and how many were not logged since, so a flood of bad
    /// messages makes one log line a second.
    refusal_log: Mutex<RefusalLog>,
    /// With TLS: every message must come over a connection with a member certificate, and
    /// a refusal for the certificate is recorded here for the audit log.
    members_only: Option<Arc<crate::auth::PendingAudit>>,
    /// This node's call record archive, for peers backfilling theirs.
    archive: trunkline_store::CdrArchive,
    /// The FetchRecords streams served at once.
    fetch_slots: FetchSlots,
}

#[derive(Default)]
struct RefusalLog {
    last_logged: Option<Instant>,
    not_logged: u64,
}

/// The peer's address and the payload of a message from this cluster.
struct Opened {
    peer: Option<SocketAddr>,
    /// The node the connection's certificate names; `None` only without TLS.
    sender: Option<NodeId>,
    payload: Vec<u8>,
}

impl PeerService {
    /// `members_only`: refuse every message whose connection shows no member certificate of
    /// this cluster, recording the refusal there (given whenever the listener speaks TLS).
    pub fn new(
        cluster: Arc<Cluster>,
        health: Arc<HealthMonitor>,
        members_only: Option<Arc<crate::auth::PendingAudit>>,
        archive: trunkline_store::CdrArchive,
    ) -> Self {
        PeerService {
            cluster,
            health,
            snapshot_progress: Mutex::new(None),
            refusal_log: Mutex::new(RefusalLog::default()),
            members_only,
            archive,
            fetch_slots: FetchSlots::default(),
        }
    }

    fn open(&self, rpc: &'static str, request: Request<RaftPayload>) -> Result<Opened, Status> {
        let peer = request.remote_addr();
        let sender = request
            .extensions()
            .get::<ConnectionInfo>()
            .and_then(|info| info.peer.as_ref())
            .and_then(|certificate| certificate.node);
        if self.members_only.is_some() && sender.is_none() {
            let status = Status::unauthenticated(format!(
                "the peer listener takes messages only from nodes of cluster {:?}, with a \
                 certificate of its CA naming the node",
                self.cluster.cluster_name
            ));
            return Err(self.refuse_certificate(peer, rpc, status));
        }
        let message = request.into_inner();
        if message.cluster_name != self.cluster.cluster_name {
            let status = Status::failed_precondition(format!(
                "node {} belongs to cluster {:?}, not {:?}",
                self.cluster.node_id, self.cluster.cluster_name, message.cluster_name
            ));
            return Err(self.refuse(peer, rpc, status));
        }
        Ok(Opened {
            peer,
            sender,
            payload: message.payload,
        })
    }

    /// Refuses a message that claims to come from `claimed` over a connection whose
    /// certificate is another node's.
    fn sent_by(&self, rpc: &'static str, opened: &Opened, claimed: NodeId) -> Result<(), Status> {
        match opened.sender {
            Some(sender) if sender != claimed => {
                let status = Status::permission_denied(format!(
                    "the message is from node {claimed} but the connection's certificate is \
                     node {sender}'s"
                ));
                Err(self.refuse_certificate(opened.peer, rpc, status))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a message whose sender (by certificate) is not a voter or learner here.
    fn sent_by_member(&self, rpc: &'static str, opened: &Opened) -> Result<(), Status> {
        let Some(sender) = opened.sender else {
            return Ok(());
        };
        let metrics = self.cluster.metrics();
        if metrics
            .membership_config
            .membership()
            .get_node(&sender)
            .is_some()
        {
            return Ok(());
        }
        let status = Status::permission_denied(format!(
            "node {sender} is not a member of cluster {:?} as node {} sees it",
            self.cluster.cluster_name, self.cluster.node_id
        ));
        Err(self.refuse_certificate(opened.peer, rpc, status))
    }

    /// A refusal for the connection's certificate: refused as any other, and recorded in the
    /// audit log.
    fn refuse_certificate(
        &self,
        peer: Option<SocketAddr>,
        rpc: &'static str,
        status: Status,
    ) -> Status {
        if let Some(audit) = &self.members_only {
            let actor = trunkline_core::audit::Actor {
                name: "-".into(),
                source: peer.map_or_else(|| "-".into(), |address| address.ip().to_string()),
                rpc: format!("peer {rpc}"),
            };
            audit.push(actor, status.message(), false);
        }
        self.refuse(peer, rpc, status)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        rpc: &'static str,
        opened: &Opened,
    ) -> Result<T, Status> {
        wire::decode(&opened.payload).map_err(|status| self.refuse(opened.peer, rpc, status))
    }

    /// Passes a checked message on, or counts, logs and answers a refused one.
    fn checked(
        &self,
        rpc: &'static str,
        opened: &Opened,
        checked: Result<(), Refusal>,
    ) -> Result<(), Status> {
        checked.map_err(|refusal| self.refuse(opened.peer, rpc, refusal.into()))
    }

    fn refuse(&self, peer: Option<SocketAddr>, rpc: &'static str, status: Status) -> Status {
        self.cluster.count_refused_peer_message();
        let now = Instant::now();
        let not_logged = match self.refusal_log.lock() {
            Ok(mut log) => {
                let recent = log
                    .last_logged
                    .is_some_and(|at| now.duration_since(at) < limits::PEER_REFUSAL_LOG_INTERVAL);
                if recent {
                    log.not_logged += 1;
                    return status;
                }
                log.last_logged = Some(now);
                std::mem::take(&mut log.not_logged)
            }
            Err(_) => 0,
        };
        let peer = peer.map_or_else(|| "unknown".to_owned(), |address| address.to_string());
        tracing::warn!(
            %peer,
            rpc,
            code = ?status.code(),
            refused_since_last_line = not_logged,
            total_refused = self.cluster.refused_peer_messages(),
            "refused a peer message: {}",
            status.message()
        );
        status
    }

    /// This node's view of the cluster, copied out of the metrics (the watch's borrow is
    /// never held across an await).
    fn view(&self) -> PeerView {
        // openraft's followers keep a leader's lease for election_timeout_max; the minimum
        // leaves a margin.
        let lease = Duration::from_millis(self.cluster.raft.config().election_timeout_min);
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let metrics = self.cluster.raft.metrics();
        let (vote, membership, leading_with_live_quorum) = {
            let metrics = metrics.borrow();
            let leading = metrics.state == ServerState::Leader
                && metrics
                    .millis_since_quorum_ack
                    .is_some_and(|since| since < lease_ms);
            (
                metrics.vote,
                metrics.membership_config.membership().clone(),
                leading,
            )
        };
        let heard_from_leader = self
            .cluster
            .since_leader_contact()
            .is_some_and(|since| since < lease);
        PeerView {
            node_id: self.cluster.node_id,
            vote,
            membership,
            leading_with_live_quorum,
            has_live_leader: leading_with_live_quorum || heard_from_leader,
        }
    }

    fn snapshot_progress(&self) -> Option<SnapshotProgress> {
        self.snapshot_progress
            .lock()
            .ok()
            .and_then(|progress| progress.clone())
    }

    fn record_snapshot_chunk(&self, request: &InstallSnapshotRequest<TypeConfig>) {
        if let Ok(mut progress) = self.snapshot_progress.lock() {
            *progress = if request.done {
                None
            } else {
                let chunk_bytes = u64::try_from(request.data.len()).unwrap_or(u64::MAX);
                Some(SnapshotProgress {
                    snapshot_id: request.meta.snapshot_id.clone(),
                    received_bytes: request.offset.saturating_add(chunk_bytes),
                })
            };
        }
    }

    fn reply<T: serde::Serialize>(&self, value: &T) -> Result<Response<RaftPayload>, Status> {
        Ok(Response::new(RaftPayload {
            cluster_name: self.cluster.cluster_name.clone(),
            payload: wire::encode(value)?,
        }))
    }
}

#[tonic::async_trait]
impl RaftService for PeerService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        const RPC: &str = "AppendEntries";
        let opened = self.open(RPC, request)?;
        let request: AppendEntriesRequest<TypeConfig> = self.decode(RPC, &opened)?;
        self.sent_by(
            RPC,
            &opened,
            request.vote.leader_id().voted_for().unwrap_or_default(),
        )?;
        self.checked(
            RPC,
            &opened,
            peer_check::append_entries(&request, &self.view()),
        )?;
        let result = self.cluster.raft.append_entries(request).await;
        if matches!(&result, Ok(response) if !matches!(response, openraft::raft::AppendEntriesResponse::HigherVote(_)))
        {
            self.cluster.record_leader_contact();
        }
        self.reply(&result)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        const RPC: &str = "Vote";
        let opened = self.open(RPC, request)?;
        let request: VoteRequest<u64> = self.decode(RPC, &opened)?;
        self.sent_by(
            RPC,
            &opened,
            request.vote.leader_id().voted_for().unwrap_or_default(),
        )?;
        self.checked(RPC, &opened, peer_check::vote(&request, &self.view()))?;
        let result = self.cluster.raft.vote(request).await;
        self.reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        const RPC: &str = "InstallSnapshot";
        let opened = self.open(RPC, request)?;
        let request: InstallSnapshotRequest<TypeConfig> = self.decode(RPC, &opened)?;
        self.sent_by(
            RPC,
            &opened,
            request.vote.leader_id().voted_for().unwrap_or_default(),
        )?;
        let progress = self.snapshot_progress();
        self.checked(
            RPC,
            &opened,
            peer_check::install_snapshot(&request, &self.view(), progress.as_ref()),
        )?;
        let result = self.cluster.raft.install_snapshot(request.clone()).await;
        if result.is_ok() {
            self.record_snapshot_chunk(&request);
            self.cluster.record_leader_contact();
        }
        self.reply(&result)
    }

    async fn forward(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        const RPC: &str = "Forward";
        let span = crate::telemetry::forwarded_span(request.metadata());
        let opened = self.open(RPC, request)?;
        self.sent_by_member(RPC, &opened)?;
        let request: LeaderRequest = self.decode(RPC, &opened)?;
        self.checked(RPC, &opened, peer_check::forward(&request))?;
        if let LeaderRequest::Write(command, ..) = &request {
            // The follower validated it too, but this node must not trust that.
            // And the leader's disk: a forwarded write grows this node's log first.
            if let Err(error) = command
                .validate()
                .map_err(ClusterError::from)
                .and_then(|()| self.cluster.check_disk(command))
            {
                let result: Result<LeaderReply, ClusterError> = Err(error);
                return self.reply(&result);
            }
        }
        let result = tracing::Instrument::instrument(self.cluster.lead(request), span).await;
        self.reply(&result)
    }

    async fn hello(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        const RPC: &str = "Hello";
        let opened = self.open(RPC, request)?;
        self.checked(RPC, &opened, peer_check::empty_payload(&opened.payload))?;
        self.reply(&self.cluster.hello().await)
    }

    async fn ping(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        const RPC: &str = "Ping";
        let opened = self.open(RPC, request)?;
        let sender: NodeId = self.decode(RPC, &opened)?;
        self.sent_by(RPC, &opened, sender)?;
        self.checked(RPC, &opened, peer_check::ping(sender, self.cluster.node_id))?;
        self.reply(&self.cluster.node_id)
    }

    async fn probe_status(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        const RPC: &str = "ProbeStatus";
        let opened = self.open(RPC, request)?;
        self.checked(RPC, &opened, peer_check::empty_payload(&opened.payload))?;
        self.reply(&self.health.probe_reports())
    }

    type FetchRecordsStream = tokio_stream::wrappers::ReceiverStream<Result<RaftPayload, Status>>;

    async fn fetch_records(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<Self::FetchRecordsStream>, Status> {
        const RPC: &str = "FetchRecords";
        let opened = self.open(RPC, request)?;
        self.sent_by_member(RPC, &opened)?;
        let request: FetchRecordsRequest = self.decode(RPC, &opened)?;
        self.checked(RPC, &opened, peer_check::fetch_records(&request))?;
        let slot = self.fetch_slots.acquire()?;
        Ok(Response::new(backfill::serve(
            self.archive.clone(),
            request,
            self.cluster.cluster_name.clone(),
            slot,
        )))
    }
}
