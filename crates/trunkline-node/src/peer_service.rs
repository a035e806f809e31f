//! The server side of the peer listener: Raft messages from other members, requests forwarded
//! by followers (writes, membership changes, read indexes), the hello a leader sends before
//! adding this node, liveness pings, and live probe results for another node's ListHealth.
//!
//! Traffic from a node of another cluster is refused before it reaches Raft, so a
//! misconfigured peer can't vote in or append to this cluster.

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};
use trunkline_api::v1::internal::{raft_service_server::RaftService, RaftPayload};
use trunkline_store::TypeConfig;

use crate::{
    cluster::{Cluster, LeaderReply, LeaderRequest},
    error::ClusterError,
    health::HealthMonitor,
    wire,
};

pub struct PeerService {
    cluster: Arc<Cluster>,
    health: Arc<HealthMonitor>,
}

impl PeerService {
    pub fn new(cluster: Arc<Cluster>, health: Arc<HealthMonitor>) -> Self {
        PeerService { cluster, health }
    }

    fn open(&self, request: Request<RaftPayload>) -> Result<Vec<u8>, Status> {
        let message = request.into_inner();
        if message.cluster_name != self.cluster.cluster_name {
            return Err(Status::failed_precondition(format!(
                "node {} belongs to cluster {:?}, not {:?}",
                self.cluster.node_id, self.cluster.cluster_name, message.cluster_name
            )));
        }
        Ok(message.payload)
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
        let payload = self.open(request)?;
        let request: AppendEntriesRequest<TypeConfig> = wire::decode(&payload)?;
        let result = self.cluster.raft.append_entries(request).await;
        if matches!(&result, Ok(response) if !matches!(response, openraft::raft::AppendEntriesResponse::HigherVote(_)))
        {
            self.cluster.record_leader_contact();
        }
        self.reply(&result)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let payload = self.open(request)?;
        let request: VoteRequest<u64> = wire::decode(&payload)?;
        let result = self.cluster.raft.vote(request).await;
        self.reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let payload = self.open(request)?;
        let request: InstallSnapshotRequest<TypeConfig> = wire::decode(&payload)?;
        let result = self.cluster.raft.install_snapshot(request).await;
        if result.is_ok() {
            self.cluster.record_leader_contact();
        }
        self.reply(&result)
    }

    async fn forward(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let payload = self.open(request)?;
        let request: LeaderRequest = wire::decode(&payload)?;
        if let LeaderRequest::Write(command) = &request {
            // The follower validated it too, but this node must not trust that.
            if let Err(error) = command.validate() {
                let result: Result<LeaderReply, ClusterError> = Err(error.into());
                return self.reply(&result);
            }
        }
        let result = self.cluster.lead(request).await;
        self.reply(&result)
    }

    async fn hello(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.open(request)?;
        self.reply(&self.cluster.hello().await)
    }

    async fn ping(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.open(request)?;
        self.reply(&self.cluster.node_id)
    }

    async fn probe_status(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.open(request)?;
        self.reply(&self.health.probe_reports())
    }
}
