//! Cluster membership and status: initialising, joining, promoting and removing members,
//! `cluster status` and the member list. Membership changes are leader requests, forwarded
//! like writes; the status is what [`Cluster::status`](crate::cluster::Cluster::status)
//! reports of this node.

use tonic::Status;
use trunkline_api::v1 as proto;
use trunkline_store::Node;

use super::AdminApi;
use crate::{
    cluster::{LeaderReply, LeaderRequest},
    convert,
};

impl AdminApi {
    pub(super) async fn init_cluster(
        &self,
        _request: proto::InitClusterRequest,
    ) -> Result<proto::InitClusterResponse, Status> {
        let admin_token = self.cluster.initialize().await?;
        tracing::info!(node_id = self.cluster.node_id, "cluster initialised");
        Ok(proto::InitClusterResponse {
            node_id: self.cluster.node_id,
            cluster_name: self.cluster.cluster_name.clone(),
            admin_token,
        })
    }

    pub(super) async fn join_cluster(
        &self,
        request: proto::JoinClusterRequest,
    ) -> Result<proto::MembershipResponse, Status> {
        let node_id = require_node_id(request.node_id)?;
        require_host_port("peer_addr", &request.peer_addr)?;
        require_host_port("api_addr", &request.api_addr)?;
        self.membership_change(LeaderRequest::AddLearner {
            node_id,
            node: Node {
                peer_addr: request.peer_addr,
                api_addr: request.api_addr,
            },
        })
        .await
    }

    pub(super) async fn promote_member(
        &self,
        request: proto::PromoteMemberRequest,
    ) -> Result<proto::MembershipResponse, Status> {
        let node_id = require_node_id(request.node_id)?;
        self.membership_change(LeaderRequest::Promote { node_id })
            .await
    }

    pub(super) async fn remove_member(
        &self,
        request: proto::RemoveMemberRequest,
    ) -> Result<proto::MembershipResponse, Status> {
        let node_id = require_node_id(request.node_id)?;
        self.membership_change(LeaderRequest::Remove { node_id })
            .await
    }

    pub(super) async fn cluster_status(
        &self,
        _request: proto::ClusterStatusRequest,
    ) -> Result<proto::ClusterStatusResponse, Status> {
        let status = self.cluster.status().await;
        let (disk_free_bytes, disk_reserve_bytes) = {
            let cluster = self.cluster.clone();
            tokio::task::spawn_blocking(move || cluster.disk_status())
                .await
                .unwrap_or((None, 0))
        };
        let certificate_days_left = match &self.tls {
            Some(tls) => {
                let tls = tls.clone();
                tokio::task::spawn_blocking(move || tls.days_left())
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
        };
        Ok(proto::ClusterStatusResponse {
            node_id: status.node_id,
            cluster_name: status.cluster_name,
            state: status.state,
            leader_id: status.leader.unwrap_or(0),
            term: status.term,
            last_log_index: status.last_log_index,
            committed_index: status.committed_index,
            applied_index: status.applied_index,
            snapshot_index: status.snapshot_index,
            staleness_ms: status.staleness_ms,
            members: convert::members(status.membership.membership(), status.leader),
            followers: status
                .followers
                .into_iter()
                .map(|follower| proto::FollowerLag {
                    node_id: follower.node_id,
                    matched_index: follower.matched_index,
                    lag_entries: follower.lag_entries,
                })
                .collect(),
            uninitialized: !status.initialized,
            refused_peer_messages: status.refused_peer_messages,
            node_time_ms: crate::cluster::now_ms(),
            disk_free_bytes,
            disk_reserve_bytes,
            certificate_days_left,
        })
    }

    pub(super) async fn list_members(
        &self,
        request: proto::ListMembersRequest,
    ) -> Result<proto::ListMembersResponse, Status> {
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        Ok(proto::ListMembersResponse {
            members: convert::members(applied.membership.membership(), read_state.leader_id),
            read_state: Some(read_state.into()),
        })
    }

    /// Submits a membership change to the leader and answers with the members after it.
    async fn membership_change(
        &self,
        request: LeaderRequest,
    ) -> Result<proto::MembershipResponse, Status> {
        let log_index = match self.cluster.submit(request).await? {
            LeaderReply::MembershipChanged { log_index } => log_index,
            other => {
                return Err(Status::internal(format!(
                    "unexpected reply to a membership change: {other:?}"
                )))
            }
        };
        let metrics = self.cluster.metrics();
        Ok(proto::MembershipResponse {
            members: convert::members(
                metrics.membership_config.membership(),
                metrics.current_leader,
            ),
            log_index,
        })
    }
}

fn require_node_id(node_id: u64) -> Result<u64, Status> {
    trunkline_api::node_id("node_id", node_id).map_err(super::domain)
}

fn require_host_port(field: &str, value: &str) -> Result<(), Status> {
    if trunkline_api::is_host_port(value) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{field}: {value:?} is not host:port"
        )))
    }
}
