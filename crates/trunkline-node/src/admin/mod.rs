//! `trunkline.v1.AdminService`, the operators' API, split by area: cluster membership and
//! status (`cluster`), the settings namespace (`settings`), tenants, carriers, gateways and
//! deletes of every kind (`routing`), rate deck imports and exports (`rates`), gateway health
//! and the event stream (`health`), DIDs, devices, edges and continuity (`inbound`), and
//! tokens (`tokens`). Who may call what is checked before any of this runs
//! ([`crate::auth`]); handlers of tenant data take the caller to check its tenants.
//!
//! tonic wants the whole service in one trait impl, so the impl below only unwraps each
//! request and hands the message to the inherent method of the same name in its area's file
//! (Rust picks an inherent method before a trait's; as it takes the bare message, not the
//! `Request`, the call can't silently recurse). Each handler converts the request, calls
//! [`Cluster`], [`HealthMonitor`] or a stream task, and converts the answer: the rules live
//! in the core, the cluster and the health monitor.

mod alerts;
pub use alerts::WEBHOOK_SETTING;
mod audit;
mod cluster;
mod health;
mod inbound;
mod rates;
mod records;
mod routing;
mod settings;
mod tokens;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use trunkline_api::v1::{self as proto, admin_service_server::AdminService};
use trunkline_core::{
    inbound::InboundResponse,
    routing::{PutMode, RoutingResponse},
    Command, Error,
};

use crate::{
    cluster::Cluster,
    config::ServiceLimits,
    error::ClusterError,
    health::HealthMonitor,
    streams::{StreamKind, StreamSlots},
};

pub struct AdminApi {
    cluster: Arc<Cluster>,
    health: Arc<HealthMonitor>,
    /// Turns true at shutdown: open event streams end then, so they don't hold the drain.
    stopping: watch::Receiver<bool>,
    /// Open WatchEvents streams, bounded.
    watch_slots: StreamSlots,
    /// Open ExportRates streams, bounded.
    export_slots: StreamSlots,
    /// Open ListAudit streams, bounded.
    audit_slots: StreamSlots,
    /// Open ListCdrs streams, bounded.
    records_slots: StreamSlots,
    /// This node's archive of call records.
    cdr_archive: trunkline_store::CdrArchive,
    /// Re-seals this node's data folder with its newest key (`RotateKeys`).
    resealer: trunkline_store::Resealer,
    /// At most one re-seal at a time.
    resealing: Arc<tokio::sync::Semaphore>,
    /// At most one backup at a time (it is held in memory while it streams).
    backing_up: Arc<tokio::sync::Semaphore>,
    /// The node's certificates, for the days they stay valid; `None`: no TLS.
    tls: Option<Arc<crate::tls::NodeTls>>,
}

impl AdminApi {
    pub fn new(
        cluster: Arc<Cluster>,
        health: Arc<HealthMonitor>,
        stopping: watch::Receiver<bool>,
        service_limits: ServiceLimits,
        resealer: trunkline_store::Resealer,
        cdr_archive: trunkline_store::CdrArchive,
        tls: Option<Arc<crate::tls::NodeTls>>,
    ) -> Self {
        AdminApi {
            cluster,
            health,
            stopping,
            watch_slots: StreamSlots::new(StreamKind::Watch, service_limits.max_watch_streams),
            export_slots: StreamSlots::new(StreamKind::Export, service_limits.max_export_streams),
            audit_slots: StreamSlots::new(StreamKind::Audit, service_limits.max_export_streams),
            records_slots: StreamSlots::new(StreamKind::Records, service_limits.max_export_streams),
            cdr_archive,
            resealer,
            resealing: Arc::new(tokio::sync::Semaphore::new(1)),
            backing_up: Arc::new(tokio::sync::Semaphore::new(1)),
            tls,
        }
    }

    /// Writes a routing or inbound put (or another write answered with a PutResponse).
    async fn put(&self, command: Command) -> Result<proto::PutResponse, Status> {
        let (response, applied_index) = self.cluster.write(command).await?;
        let (replaced, warnings) = match response {
            trunkline_core::Response::Routing(RoutingResponse::Put { replaced, warnings }) => {
                (replaced, warnings)
            }
            trunkline_core::Response::Inbound(InboundResponse::Put { replaced }) => {
                (replaced, Vec::new())
            }
            trunkline_core::Response::Routing(_) | trunkline_core::Response::Inbound(_) => {
                (false, Vec::new())
            }
            other => {
                return Err(Status::internal(format!(
                    "unexpected response to a put: {other:?}"
                )))
            }
        };
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        Ok(proto::PutResponse {
            applied_index,
            replaced,
            warnings,
        })
    }
}

fn put_mode(mode: i32) -> Result<PutMode, Status> {
    match proto::PutMode::try_from(mode) {
        Ok(proto::PutMode::Unspecified) => Ok(PutMode::Upsert),
        Ok(proto::PutMode::Create) => Ok(PutMode::Create),
        Ok(proto::PutMode::Replace) => Ok(PutMode::Replace),
        Err(_) => Err(domain(Error::invalid(
            "mode",
            format!("{mode} is not a put mode"),
        ))),
    }
}

fn domain(error: impl Into<Error>) -> Status {
    ClusterError::Domain(error.into()).into()
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, Status> {
    value.ok_or_else(|| domain(Error::invalid(field, "is required")))
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn init_cluster(
        &self,
        request: Request<proto::InitClusterRequest>,
    ) -> Result<Response<proto::InitClusterResponse>, Status> {
        self.init_cluster(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn join_cluster(
        &self,
        request: Request<proto::JoinClusterRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        self.join_cluster(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn promote_member(
        &self,
        request: Request<proto::PromoteMemberRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        self.promote_member(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn remove_member(
        &self,
        request: Request<proto::RemoveMemberRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        self.remove_member(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn cluster_status(
        &self,
        request: Request<proto::ClusterStatusRequest>,
    ) -> Result<Response<proto::ClusterStatusResponse>, Status> {
        self.cluster_status(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_members(
        &self,
        request: Request<proto::ListMembersRequest>,
    ) -> Result<Response<proto::ListMembersResponse>, Status> {
        self.list_members(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_setting(
        &self,
        request: Request<proto::GetSettingRequest>,
    ) -> Result<Response<proto::GetSettingResponse>, Status> {
        self.get_setting(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_settings(
        &self,
        request: Request<proto::ListSettingsRequest>,
    ) -> Result<Response<proto::ListSettingsResponse>, Status> {
        self.list_settings(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn set_setting(
        &self,
        request: Request<proto::SetSettingRequest>,
    ) -> Result<Response<proto::SettingWriteResponse>, Status> {
        self.set_setting(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_setting(
        &self,
        request: Request<proto::DeleteSettingRequest>,
    ) -> Result<Response<proto::SettingWriteResponse>, Status> {
        self.delete_setting(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn compare_and_set_setting(
        &self,
        request: Request<proto::CompareAndSetSettingRequest>,
    ) -> Result<Response<proto::SettingWriteResponse>, Status> {
        self.compare_and_set_setting(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn put_tenant(
        &self,
        request: Request<proto::PutTenantRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        self.put_tenant(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn put_carrier(
        &self,
        request: Request<proto::PutCarrierRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        self.put_carrier(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn set_calling_policy(
        &self,
        request: Request<proto::SetCallingPolicyRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.set_calling_policy(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn get_usage(
        &self,
        request: Request<proto::GetUsageRequest>,
    ) -> Result<Response<proto::GetUsageResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.get_usage(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn put_gateway(
        &self,
        request: Request<proto::PutGatewayRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        self.put_gateway(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_object(
        &self,
        request: Request<proto::DeleteObjectRequest>,
    ) -> Result<Response<proto::DeleteObjectResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.delete_object(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn list_routing(
        &self,
        request: Request<proto::ListRoutingRequest>,
    ) -> Result<Response<proto::ListRoutingResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.list_routing(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn drain_gateway(
        &self,
        request: Request<proto::DrainGatewayRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        self.drain_gateway(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn stage_rates(
        &self,
        request: Request<proto::StageRatesRequest>,
    ) -> Result<Response<proto::StageRatesResponse>, Status> {
        self.stage_rates(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn commit_rates(
        &self,
        request: Request<proto::CommitRatesRequest>,
    ) -> Result<Response<proto::CommitRatesResponse>, Status> {
        self.commit_rates(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn abort_rates(
        &self,
        request: Request<proto::AbortRatesRequest>,
    ) -> Result<Response<proto::AbortRatesResponse>, Status> {
        self.abort_rates(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_imports(
        &self,
        request: Request<proto::ListImportsRequest>,
    ) -> Result<Response<proto::ListImportsResponse>, Status> {
        self.list_imports(request.into_inner())
            .await
            .map(Response::new)
    }

    type ExportRatesStream = ReceiverStream<Result<proto::ExportRatesChunk, Status>>;

    async fn export_rates(
        &self,
        request: Request<proto::ExportRatesRequest>,
    ) -> Result<Response<Self::ExportRatesStream>, Status> {
        self.export_rates(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_health_policy(
        &self,
        request: Request<proto::GetHealthPolicyRequest>,
    ) -> Result<Response<proto::GetHealthPolicyResponse>, Status> {
        self.get_health_policy(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn set_health_policy(
        &self,
        request: Request<proto::SetHealthPolicyRequest>,
    ) -> Result<Response<proto::SetHealthPolicyResponse>, Status> {
        self.set_health_policy(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_health(
        &self,
        request: Request<proto::ListHealthRequest>,
    ) -> Result<Response<proto::ListHealthResponse>, Status> {
        self.list_health(request.into_inner())
            .await
            .map(Response::new)
    }

    type WatchEventsStream = ReceiverStream<Result<proto::Event, Status>>;

    async fn watch_events(
        &self,
        request: Request<proto::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let principal = crate::auth::principal(&request);
        self.watch_events(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn put_did(
        &self,
        request: Request<proto::PutDidRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.put_did(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn put_device(
        &self,
        request: Request<proto::PutDeviceRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.put_device(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn set_tenant_continuity(
        &self,
        request: Request<proto::SetTenantContinuityRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.set_tenant_continuity(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn list_inbound(
        &self,
        request: Request<proto::ListInboundRequest>,
    ) -> Result<Response<proto::ListInboundResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.list_inbound(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn list_bindings(
        &self,
        request: Request<proto::ListBindingsRequest>,
    ) -> Result<Response<proto::ListBindingsResponse>, Status> {
        self.list_bindings(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn put_edge(
        &self,
        request: Request<proto::PutEdgeRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        self.put_edge(request.into_inner()).await.map(Response::new)
    }

    async fn create_token(
        &self,
        request: Request<proto::CreateTokenRequest>,
    ) -> Result<Response<proto::CreateTokenResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.create_token(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn list_tokens(
        &self,
        request: Request<proto::ListTokensRequest>,
    ) -> Result<Response<proto::ListTokensResponse>, Status> {
        self.list_tokens(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        self.revoke_token(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_alerts(
        &self,
        request: Request<proto::ListAlertsRequest>,
    ) -> Result<Response<proto::ListAlertsResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.list_alerts(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn acknowledge_alert(
        &self,
        request: Request<proto::AcknowledgeAlertRequest>,
    ) -> Result<Response<proto::AcknowledgeAlertResponse>, Status> {
        let principal = crate::auth::principal(&request);
        self.acknowledge_alert(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    async fn unblock_tenant(
        &self,
        request: Request<proto::UnblockTenantRequest>,
    ) -> Result<Response<proto::UnblockTenantResponse>, Status> {
        self.unblock_tenant(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_alert_policy(
        &self,
        request: Request<proto::GetAlertPolicyRequest>,
    ) -> Result<Response<proto::GetAlertPolicyResponse>, Status> {
        self.get_alert_policy(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn set_alert_rule(
        &self,
        request: Request<proto::SetAlertRuleRequest>,
    ) -> Result<Response<proto::SetAlertRuleResponse>, Status> {
        self.set_alert_rule(request.into_inner())
            .await
            .map(Response::new)
    }

    type ListCdrsStream = ReceiverStream<Result<proto::ListCdrsChunk, Status>>;

    async fn list_cdrs(
        &self,
        request: Request<proto::ListCdrsRequest>,
    ) -> Result<Response<Self::ListCdrsStream>, Status> {
        let principal = crate::auth::principal(&request);
        self.list_cdrs(request.into_inner(), &principal)
            .await
            .map(Response::new)
    }

    type ListAuditStream = ReceiverStream<Result<proto::AuditEntry, Status>>;

    async fn list_audit(
        &self,
        request: Request<proto::ListAuditRequest>,
    ) -> Result<Response<Self::ListAuditStream>, Status> {
        self.list_audit(request.into_inner())
            .await
            .map(Response::new)
    }

    type RotateKeysStream = ReceiverStream<Result<proto::RotateKeysProgress, Status>>;

    async fn rotate_keys(
        &self,
        request: Request<proto::RotateKeysRequest>,
    ) -> Result<Response<Self::RotateKeysStream>, Status> {
        self.rotate_keys(request.into_inner())
            .await
            .map(Response::new)
    }

    type BackupStream = ReceiverStream<Result<proto::BackupChunk, Status>>;

    async fn backup(
        &self,
        request: Request<proto::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        self.backup(request.into_inner()).await.map(Response::new)
    }
}
