//! `trunkline.v1.AdminService`: cluster membership and status, and the settings namespace.
//! Each handler converts the request, calls [`Cluster`], and converts the answer; the rules
//! live in the cluster and the core.

use std::{collections::BTreeSet, sync::Arc};

use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use trunkline_api::v1::{self as proto, admin_service_server::AdminService};
use trunkline_core::{
    health::{assign, HealthCommand},
    inbound::{validate_aor, validate_number, InboundCommand, InboundResponse},
    routing::{ObjectKind, PutMode, RoutingCommand, RoutingResponse, MAX_ROWS_PER_CHUNK},
    settings::{SettingsCommand, SettingsResponse},
    Command, Error,
};
use trunkline_store::Node;

use crate::{
    cluster::{Cluster, LeaderReply, LeaderRequest},
    config::ServiceLimits,
    convert,
    error::ClusterError,
    health::HealthMonitor,
    limits,
    streams::{self, StreamKind, StreamSlots, WatchRequest},
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
}

impl AdminApi {
    pub fn new(
        cluster: Arc<Cluster>,
        health: Arc<HealthMonitor>,
        stopping: watch::Receiver<bool>,
        service_limits: ServiceLimits,
    ) -> Self {
        AdminApi {
            cluster,
            health,
            stopping,
            watch_slots: StreamSlots::new(StreamKind::Watch, service_limits.max_watch_streams),
            export_slots: StreamSlots::new(StreamKind::Export, service_limits.max_export_streams),
        }
    }

    async fn membership_change(
        &self,
        request: LeaderRequest,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        let log_index = match self.cluster.submit(request).await? {
            LeaderReply::MembershipChanged { log_index } => log_index,
            other => {
                return Err(Status::internal(format!(
                    "unexpected reply to a membership change: {other:?}"
                )))
            }
        };
        let metrics = self.cluster.metrics();
        Ok(Response::new(proto::MembershipResponse {
            members: convert::members(
                metrics.membership_config.membership(),
                metrics.current_leader,
            ),
            log_index,
        }))
    }

    async fn write_setting(
        &self,
        command: SettingsCommand,
    ) -> Result<Response<proto::SettingWriteResponse>, Status> {
        let key = command.key().to_owned();
        let (response, log_index) = self.cluster.write(Command::Settings(command)).await?;
        let (succeeded, current) = match response {
            trunkline_core::Response::Settings(SettingsResponse::Written { current }) => {
                (true, current)
            }
            trunkline_core::Response::Settings(SettingsResponse::Absent) => (false, None),
            trunkline_core::Response::Settings(SettingsResponse::CompareFailed { current }) => {
                (false, current)
            }
            other => {
                return Err(Status::internal(format!(
                    "unexpected response to a settings write: {other:?}"
                )))
            }
        };
        Ok(Response::new(proto::SettingWriteResponse {
            succeeded,
            current: current.map(|setting| convert::setting(&key, &setting)),
            applied_index: log_index,
        }))
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

impl AdminApi {
    async fn routing_write(
        &self,
        command: RoutingCommand,
    ) -> Result<(RoutingResponse, u64), Status> {
        let (response, log_index) = self.cluster.write(Command::Routing(command)).await?;
        match response {
            trunkline_core::Response::Routing(response) => Ok((response, log_index)),
            other => Err(Status::internal(format!(
                "unexpected response to a routing write: {other:?}"
            ))),
        }
    }

    /// Writes a routing or inbound put (or another write answered with a PutResponse).
    async fn put(&self, command: Command) -> Result<Response<proto::PutResponse>, Status> {
        let (response, applied_index) = self.cluster.write(command).await?;
        let replaced = match response {
            trunkline_core::Response::Routing(RoutingResponse::Put { replaced })
            | trunkline_core::Response::Inbound(InboundResponse::Put { replaced }) => replaced,
            trunkline_core::Response::Routing(_) | trunkline_core::Response::Inbound(_) => false,
            other => {
                return Err(Status::internal(format!(
                    "unexpected response to a put: {other:?}"
                )))
            }
        };
        Ok(Response::new(proto::PutResponse {
            applied_index,
            replaced,
        }))
    }
}

/// The command that deletes the `kind` object whose key is `name`: a routing delete, or the
/// inbound one for a DID (by number), a device (by AOR) or an edge. The key is checked here
/// so an error names the wire's field, `name`.
fn delete_command(kind: i32, name: String) -> Result<Command, Status> {
    let inbound = match proto::ObjectKind::try_from(kind) {
        Ok(proto::ObjectKind::Tenant) => return Ok(routing_delete(ObjectKind::Tenant, name)),
        Ok(proto::ObjectKind::Carrier) => return Ok(routing_delete(ObjectKind::Carrier, name)),
        Ok(proto::ObjectKind::Gateway) => return Ok(routing_delete(ObjectKind::Gateway, name)),
        Ok(proto::ObjectKind::Did) => {
            validate_number("name", &name).map_err(domain)?;
            InboundCommand::DeleteDid { number: name }
        }
        Ok(proto::ObjectKind::Device) => {
            validate_aor("name", &name).map_err(domain)?;
            InboundCommand::DeleteDevice { aor: name }
        }
        Ok(proto::ObjectKind::Edge) => InboundCommand::DeleteEdge { name },
        Ok(proto::ObjectKind::Unspecified) | Err(_) => {
            return Err(domain(Error::invalid(
                "kind",
                "must be tenant, carrier, gateway, did, device or edge",
            )))
        }
    };
    Ok(Command::Inbound(inbound))
}

fn routing_delete(kind: ObjectKind, name: String) -> Command {
    Command::Routing(RoutingCommand::Delete { kind, name })
}

fn require_node_id(node_id: u64) -> Result<u64, Status> {
    if node_id == 0 {
        Err(Status::invalid_argument(
            "node_id: must be a positive number",
        ))
    } else {
        Ok(node_id)
    }
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

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn init_cluster(
        &self,
        _request: Request<proto::InitClusterRequest>,
    ) -> Result<Response<proto::InitClusterResponse>, Status> {
        self.cluster.initialize().await?;
        tracing::info!(node_id = self.cluster.node_id, "cluster initialised");
        Ok(Response::new(proto::InitClusterResponse {
            node_id: self.cluster.node_id,
            cluster_name: self.cluster.cluster_name.clone(),
        }))
    }

    async fn join_cluster(
        &self,
        request: Request<proto::JoinClusterRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        let request = request.into_inner();
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

    async fn promote_member(
        &self,
        request: Request<proto::PromoteMemberRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        let node_id = require_node_id(request.into_inner().node_id)?;
        self.membership_change(LeaderRequest::Promote { node_id })
            .await
    }

    async fn remove_member(
        &self,
        request: Request<proto::RemoveMemberRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        let node_id = require_node_id(request.into_inner().node_id)?;
        self.membership_change(LeaderRequest::Remove { node_id })
            .await
    }

    async fn cluster_status(
        &self,
        _request: Request<proto::ClusterStatusRequest>,
    ) -> Result<Response<proto::ClusterStatusResponse>, Status> {
        let metrics = self.cluster.metrics();
        let committed_index = self.cluster.committed_index().await;
        let last_log_index = metrics.last_log_index.unwrap_or(0);
        let followers = metrics
            .replication
            .iter()
            .flat_map(|replication| replication.iter())
            .filter(|(node_id, _)| **node_id != self.cluster.node_id)
            .map(|(node_id, matched)| {
                let matched_index = matched.map_or(0, |log_id| log_id.index);
                proto::FollowerLag {
                    node_id: *node_id,
                    matched_index,
                    lag_entries: last_log_index.saturating_sub(matched_index),
                }
            })
            .collect();
        let membership = metrics.membership_config.membership();
        // A core stopped by a storage error still shows its last role and leader in the
        // metrics; say what it really is, and that it leads nothing.
        let (state, leader) = match &metrics.running_state {
            Err(fatal) => (format!("stopped: {fatal}"), None),
            Ok(()) => (
                format!("{:?}", metrics.state).to_lowercase(),
                metrics.current_leader,
            ),
        };
        Ok(Response::new(proto::ClusterStatusResponse {
            node_id: self.cluster.node_id,
            cluster_name: self.cluster.cluster_name.clone(),
            state,
            leader_id: leader.unwrap_or(0),
            term: metrics.current_term,
            last_log_index,
            committed_index,
            applied_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
            snapshot_index: metrics.snapshot.map_or(0, |log_id| log_id.index),
            staleness_ms: self.cluster.staleness_ms(&metrics),
            members: convert::members(membership, leader),
            followers,
            uninitialized: !self.cluster.is_initialized().await,
            refused_peer_messages: self.cluster.refused_peer_messages(),
        }))
    }

    async fn list_members(
        &self,
        _request: Request<proto::ListMembersRequest>,
    ) -> Result<Response<proto::ListMembersResponse>, Status> {
        let (applied, read_state) = self.cluster.read(Default::default()).await?;
        Ok(Response::new(proto::ListMembersResponse {
            members: convert::members(applied.membership.membership(), read_state.leader_id),
            read_state: Some(read_state.into()),
        }))
    }

    async fn get_setting(
        &self,
        request: Request<proto::GetSettingRequest>,
    ) -> Result<Response<proto::GetSettingResponse>, Status> {
        let request = request.into_inner();
        trunkline_core::settings::validate_key(&request.key).map_err(domain)?;
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let setting = applied
            .state
            .settings()
            .get(&request.key)
            .map(|setting| convert::setting(&request.key, setting));
        Ok(Response::new(proto::GetSettingResponse {
            setting,
            read_state: Some(read_state.into()),
        }))
    }

    async fn list_settings(
        &self,
        request: Request<proto::ListSettingsRequest>,
    ) -> Result<Response<proto::ListSettingsResponse>, Status> {
        let request = request.into_inner();
        let limit = match request.limit {
            0 => limits::MAX_LIST_SETTINGS,
            limit => (limit as usize).min(limits::MAX_LIST_SETTINGS),
        };
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let settings = applied
            .state
            .settings()
            .list(&request.prefix, limit)
            .map(|(key, setting)| convert::setting(key, setting))
            .collect();
        Ok(Response::new(proto::ListSettingsResponse {
            settings,
            read_state: Some(read_state.into()),
        }))
    }

    async fn set_setting(
        &self,
        request: Request<proto::SetSettingRequest>,
    ) -> Result<Response<proto::SettingWriteResponse>, Status> {
        let request = request.into_inner();
        self.write_setting(SettingsCommand::Set {
            key: request.key,
            value: request.value,
        })
        .await
    }

    async fn delete_setting(
        &self,
        request: Request<proto::DeleteSettingRequest>,
    ) -> Result<Response<proto::SettingWriteResponse>, Status> {
        self.write_setting(SettingsCommand::Delete {
            key: request.into_inner().key,
        })
        .await
    }

    async fn compare_and_set_setting(
        &self,
        request: Request<proto::CompareAndSetSettingRequest>,
    ) -> Result<Response<proto::SettingWriteResponse>, Status> {
        let request = request.into_inner();
        self.write_setting(SettingsCommand::CompareAndSet {
            key: request.key,
            expected: request.expected,
            value: request.value,
        })
        .await
    }

    async fn put_tenant(
        &self,
        request: Request<proto::PutTenantRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let request = request.into_inner();
        let tenant =
            convert::tenant_from_proto(required("tenant", request.tenant)?).map_err(domain)?;
        self.put(Command::Routing(RoutingCommand::PutTenant {
            tenant,
            mode: put_mode(request.mode)?,
        }))
        .await
    }

    async fn put_carrier(
        &self,
        request: Request<proto::PutCarrierRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let request = request.into_inner();
        let carrier =
            convert::carrier_from_proto(required("carrier", request.carrier)?).map_err(domain)?;
        self.put(Command::Routing(RoutingCommand::PutCarrier {
            carrier,
            mode: put_mode(request.mode)?,
        }))
        .await
    }

    async fn put_gateway(
        &self,
        request: Request<proto::PutGatewayRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let request = request.into_inner();
        let gateway =
            convert::gateway_from_proto(required("gateway", request.gateway)?).map_err(domain)?;
        self.put(Command::Routing(RoutingCommand::PutGateway {
            gateway,
            mode: put_mode(request.mode)?,
        }))
        .await
    }

    async fn delete_object(
        &self,
        request: Request<proto::DeleteObjectRequest>,
    ) -> Result<Response<proto::DeleteObjectResponse>, Status> {
        let request = request.into_inner();
        let command = delete_command(request.kind, request.name)?;
        let (_, applied_index) = self.cluster.write(command).await?;
        Ok(Response::new(proto::DeleteObjectResponse { applied_index }))
    }

    async fn list_routing(
        &self,
        request: Request<proto::ListRoutingRequest>,
    ) -> Result<Response<proto::ListRoutingResponse>, Status> {
        let (applied, read_state) = self
            .cluster
            .read(request.into_inner().consistency.into())
            .await?;
        let routing = applied.state.routing();
        Ok(Response::new(proto::ListRoutingResponse {
            tenants: routing.tenants().map(convert::tenant_to_proto).collect(),
            carriers: routing.carriers().map(convert::carrier_to_proto).collect(),
            gateways: routing
                .gateways()
                .map(|gateway| {
                    convert::gateway_to_proto(gateway, routing.is_drained(&gateway.name))
                })
                .collect(),
            deck_rows: routing
                .decks()
                .map(|(carrier, deck)| (carrier.clone(), deck.len() as u64))
                .collect(),
            read_state: Some(read_state.into()),
        }))
    }

    async fn drain_gateway(
        &self,
        request: Request<proto::DrainGatewayRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let request = request.into_inner();
        self.put(Command::Routing(RoutingCommand::SetDrained {
            gateway: request.gateway,
            drained: request.drained,
        }))
        .await
    }

    async fn stage_rates(
        &self,
        request: Request<proto::StageRatesRequest>,
    ) -> Result<Response<proto::StageRatesResponse>, Status> {
        let request = request.into_inner();
        if request.rates.len() > MAX_ROWS_PER_CHUNK {
            return Err(domain(Error::invalid(
                "rates",
                format!(
                    "{} rows in one chunk; the limit is {MAX_ROWS_PER_CHUNK}",
                    request.rates.len()
                ),
            )));
        }
        let (response, _) = self
            .routing_write(RoutingCommand::StageRates {
                import_id: request.import_id,
                owner: request.owner,
                carrier: request.carrier,
                first_line: request.first_line,
                rates: request
                    .rates
                    .into_iter()
                    .map(convert::rate_from_proto)
                    .collect(),
            })
            .await?;
        let staged_rows = match response {
            RoutingResponse::Staged { staged_rows } => staged_rows,
            _ => 0,
        };
        Ok(Response::new(proto::StageRatesResponse { staged_rows }))
    }

    async fn commit_rates(
        &self,
        request: Request<proto::CommitRatesRequest>,
    ) -> Result<Response<proto::CommitRatesResponse>, Status> {
        let request = request.into_inner();
        let (response, applied_index) = self
            .routing_write(RoutingCommand::CommitRates {
                import_id: request.import_id,
                owner: request.owner,
                carrier: request.carrier,
                replace: request.replace,
                expected_rows: request.expected_rows,
            })
            .await?;
        let deck_rows = match response {
            RoutingResponse::Committed { deck_rows } => deck_rows,
            _ => 0,
        };
        Ok(Response::new(proto::CommitRatesResponse {
            deck_rows,
            applied_index,
        }))
    }

    async fn abort_rates(
        &self,
        request: Request<proto::AbortRatesRequest>,
    ) -> Result<Response<proto::AbortRatesResponse>, Status> {
        let request = request.into_inner();
        let (response, applied_index) = self
            .routing_write(RoutingCommand::AbortRates {
                import_id: request.import_id,
                owner: request.owner,
            })
            .await?;
        let staged_rows = match response {
            RoutingResponse::Aborted { staged_rows } => staged_rows,
            _ => 0,
        };
        Ok(Response::new(proto::AbortRatesResponse {
            staged_rows,
            applied_index,
        }))
    }

    async fn list_imports(
        &self,
        request: Request<proto::ListImportsRequest>,
    ) -> Result<Response<proto::ListImportsResponse>, Status> {
        let (applied, read_state) = self
            .cluster
            .read(request.into_inner().consistency.into())
            .await?;
        // Idle time at the log's time, so every node at one index gives one answer.
        let now_ms = applied.state.time_ms();
        let imports = applied
            .state
            .routing()
            .staged_imports()
            .map(|(import_id, staged)| proto::StagedImport {
                import_id: import_id.clone(),
                carrier: staged.carrier.clone(),
                staged_rows: staged.rows,
                started_ms: staged.started_ms,
                last_chunk_ms: staged.last_chunk_ms,
                idle_ms: staged.idle_ms(now_ms),
            })
            .collect();
        Ok(Response::new(proto::ListImportsResponse {
            imports,
            read_state: Some(read_state.into()),
        }))
    }

    type ExportRatesStream = ReceiverStream<Result<proto::ExportRatesChunk, Status>>;

    async fn export_rates(
        &self,
        request: Request<proto::ExportRatesRequest>,
    ) -> Result<Response<Self::ExportRatesStream>, Status> {
        let request = request.into_inner();
        trunkline_core::routing::validate_name("carrier", &request.carrier).map_err(domain)?;
        let permit = self.export_slots.acquire()?;
        let (applied, _) = self.cluster.read(request.consistency.into()).await?;
        let routing = applied.state.routing();
        if routing.carrier(&request.carrier).is_none() {
            return Err(domain(Error::not_found("carrier", request.carrier)));
        }
        let receiver = streams::export_rates(
            self.cluster.reader.clone(),
            request.carrier.clone(),
            routing.deck(&request.carrier),
            permit,
            limits::EXPORT_CHANNEL_CHUNKS,
        );
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn get_health_policy(
        &self,
        request: Request<proto::GetHealthPolicyRequest>,
    ) -> Result<Response<proto::GetHealthPolicyResponse>, Status> {
        let (applied, read_state) = self
            .cluster
            .read(request.into_inner().consistency.into())
            .await?;
        Ok(Response::new(proto::GetHealthPolicyResponse {
            policy: Some(convert::health_policy_to_proto(
                applied.state.health().policy(),
            )),
            read_state: Some(read_state.into()),
        }))
    }

    async fn set_health_policy(
        &self,
        request: Request<proto::SetHealthPolicyRequest>,
    ) -> Result<Response<proto::SetHealthPolicyResponse>, Status> {
        let policy =
            convert::health_policy_from_proto(request.into_inner().policy).map_err(domain)?;
        let (_, applied_index) = self
            .cluster
            .write(Command::Health(HealthCommand::SetPolicy(policy)))
            .await?;
        Ok(Response::new(proto::SetHealthPolicyResponse {
            applied_index,
        }))
    }

    async fn list_health(
        &self,
        request: Request<proto::ListHealthRequest>,
    ) -> Result<Response<proto::ListHealthResponse>, Status> {
        let request = request.into_inner();
        if !request.carrier.is_empty() {
            trunkline_core::routing::validate_name("carrier", &request.carrier).map_err(domain)?;
        }
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let routing = applied.state.routing();
        if !request.carrier.is_empty() && routing.carrier(&request.carrier).is_none() {
            return Err(domain(Error::not_found("carrier", request.carrier)));
        }
        let table = applied.state.health();
        let live = self.health.liveness().live_voters();
        let mut gateways: Vec<proto::GatewayHealth> = routing
            .gateways()
            .filter(|gateway| request.carrier.is_empty() || gateway.carrier == request.carrier)
            .map(|gateway| {
                let mut line = convert::gateway_health(
                    gateway,
                    table.gateway(&gateway.name),
                    routing.is_drained(&gateway.name),
                );
                if gateway.enabled {
                    line.prober_node = assign(&gateway.name, &live).unwrap_or(0);
                }
                line
            })
            .collect();
        if request.carrier.is_empty() {
            for edge in applied.state.inbound().edges() {
                let mut line = convert::edge_health(edge, table.gateway(&edge.name));
                if edge.enabled {
                    line.prober_node = assign(&edge.name, &live).unwrap_or(0);
                }
                gateways.push(line);
            }
        }
        let probers: BTreeSet<u64> = gateways
            .iter()
            .filter(|line| !line.probing_disabled && line.prober_node != 0)
            .map(|line| line.prober_node)
            .collect();
        let (reports, unreachable_probers) = self.health.gather_reports(&probers).await;
        for line in &mut gateways {
            if let Some(report) = reports.get(&line.gateway) {
                line.last_round_trip_ms = report.last_round_trip_ms;
                line.last_probe_ms = report.last_probe_ms;
                line.last_result = report.last_result.clone();
                line.consecutive_failures = report.consecutive_failures;
                line.consecutive_successes = report.consecutive_successes;
            }
        }
        Ok(Response::new(proto::ListHealthResponse {
            gateways,
            read_state: Some(read_state.into()),
            unreachable_probers,
        }))
    }

    type WatchEventsStream = ReceiverStream<Result<proto::Event, Status>>;

    async fn watch_events(
        &self,
        request: Request<proto::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let request = request.into_inner();
        if request.recent > limits::MAX_RECENT_EVENTS {
            return Err(domain(Error::invalid(
                "recent",
                format!("must be at most {}", limits::MAX_RECENT_EVENTS),
            )));
        }
        let permit = self.watch_slots.acquire()?;
        let receiver = streams::watch_events(
            self.cluster.reader.clone(),
            WatchRequest {
                after_index: request.after_index,
                recent: request.recent,
                follow: request.follow,
            },
            self.stopping.clone(),
            permit,
            limits::EVENT_CHANNEL_EVENTS,
        );
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn put_did(
        &self,
        request: Request<proto::PutDidRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let request = request.into_inner();
        let did = convert::did_from_proto(request.did).map_err(domain)?;
        self.put(Command::Inbound(InboundCommand::PutDid {
            did,
            mode: put_mode(request.mode)?,
        }))
        .await
    }

    async fn put_device(
        &self,
        request: Request<proto::PutDeviceRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let request = request.into_inner();
        let device = convert::device_from_proto(request.device).map_err(domain)?;
        self.put(Command::Inbound(InboundCommand::PutDevice {
            device,
            mode: put_mode(request.mode)?,
        }))
        .await
    }

    async fn set_tenant_continuity(
        &self,
        request: Request<proto::SetTenantContinuityRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let request = request.into_inner();
        let plan = convert::plan_from_proto(request.plan).map_err(domain)?;
        self.put(Command::Inbound(InboundCommand::SetTenantContinuity {
            tenant: request.tenant,
            plan,
        }))
        .await
    }

    async fn list_inbound(
        &self,
        request: Request<proto::ListInboundRequest>,
    ) -> Result<Response<proto::ListInboundResponse>, Status> {
        let (applied, read_state) = self
            .cluster
            .read(request.into_inner().consistency.into())
            .await?;
        let inbound = applied.state.inbound();
        let routing = applied.state.routing();
        Ok(Response::new(proto::ListInboundResponse {
            dids: inbound.dids().map(convert::did_to_proto).collect(),
            devices: inbound.devices().map(convert::device_to_proto).collect(),
            edges: inbound.edges().map(convert::edge_to_proto).collect(),
            tenant_plans: routing
                .tenants()
                .filter_map(|tenant| {
                    inbound
                        .tenant_plan(&tenant.name)
                        .map(|plan| proto::TenantContinuity {
                            tenant: tenant.name.clone(),
                            plan: Some(convert::plan_to_proto(plan)),
                        })
                })
                .collect(),
            read_state: Some(read_state.into()),
        }))
    }

    async fn list_bindings(
        &self,
        request: Request<proto::ListBindingsRequest>,
    ) -> Result<Response<proto::ListBindingsResponse>, Status> {
        let request = request.into_inner();
        trunkline_core::inbound::validate_aor("aor", &request.aor).map_err(domain)?;
        let (applied, read_state) = self.cluster.read(request.consistency.into()).await?;
        let inbound = applied.state.inbound();
        if inbound.device(&request.aor).is_none() {
            return Err(domain(Error::not_found("device", request.aor)));
        }
        let now_ms = applied.state.time_ms();
        Ok(Response::new(proto::ListBindingsResponse {
            bindings: inbound
                .registrations()
                .live(&request.aor, now_ms)
                .into_iter()
                .map(convert::binding_to_proto)
                .collect(),
            now_ms,
            read_state: Some(read_state.into()),
        }))
    }

    async fn put_edge(
        &self,
        request: Request<proto::PutEdgeRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let request = request.into_inner();
        let edge = convert::edge_from_proto(request.edge).map_err(domain)?;
        self.put(Command::Inbound(InboundCommand::PutEdge {
            edge,
            mode: put_mode(request.mode)?,
        }))
        .await
    }
}
