//! `trunkline.v1.RouteService`: the SIP proxies' API. Lookups read the node's routing view
//! (never Raft, never a lock the apply path holds); leg reports carry the call's state in the
//! route token, so they can land on any node.

use std::sync::Arc;

use tonic::{metadata::MetadataValue, Code, Request, Response, Status};
use trunkline_api::v1::{self as proto, route_service_server::RouteService};
use trunkline_core::{routing::validate_name_field, Error};

use crate::{
    cluster::{now_ms, Cluster, ReadState},
    error::ClusterError,
    health::HealthMonitor,
    limits,
    outbound::{self, Next, Refused},
    route_token,
    routing_view::{RoutingView, RoutingViews},
};

/// Metadata on a refused RouteOutbound: why, in a word a proxy can switch on.
pub const REFUSAL_HEADER: &str = "trunkline-refusal";
/// Metadata on a refused RouteOutbound: the SIP reply the proxy should send.
pub const SIP_CODE_HEADER: &str = "trunkline-sip-code";
/// Longest dialled or calling number accepted, in characters.
pub const MAX_NUMBER_CHARS: usize = 64;

pub struct RouteApi {
    cluster: Arc<Cluster>,
    views: Arc<RoutingViews>,
    health: Arc<HealthMonitor>,
}

impl RouteApi {
    pub fn new(
        cluster: Arc<Cluster>,
        views: Arc<RoutingViews>,
        health: Arc<HealthMonitor>,
    ) -> Self {
        RouteApi {
            cluster,
            views,
            health,
        }
    }

    async fn view(&self, min_applied_index: u64) -> Result<Arc<RoutingView>, Status> {
        if min_applied_index == 0 {
            return Ok(self.views.current());
        }
        Ok(self
            .views
            .at_least(min_applied_index, limits::READ_WAIT_TIMEOUT)
            .await?)
    }

    fn read_state(&self, view: &RoutingView) -> proto::ReadState {
        let metrics = self.cluster.metrics();
        ReadState {
            node_id: self.cluster.node_id,
            applied_index: view.applied_index,
            leader_id: metrics.current_leader,
            staleness_ms: self.cluster.staleness_ms(&metrics),
        }
        .into()
    }

    fn token_key(view: &RoutingView) -> Result<Vec<u8>, Status> {
        view.applied
            .state
            .routing()
            .route_token_key()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Status::failed_precondition(
                    "this cluster has no route token key yet: it is set when the cluster is \
                     initialised; wait for the node to catch up",
                )
            })
    }
}

fn refusal(code: Code, message: String, reason: &'static str, sip_code: u32) -> Status {
    let mut status = Status::new(code, message);
    status
        .metadata_mut()
        .insert(REFUSAL_HEADER, MetadataValue::from_static(reason));
    status
        .metadata_mut()
        .insert(SIP_CODE_HEADER, MetadataValue::from(sip_code));
    status
}

fn refused(refused: Refused) -> Status {
    match refused {
        Refused::UnknownTenant(tenant) => refusal(
            Code::NotFound,
            format!("tenant: {tenant:?} not found"),
            "unknown-tenant",
            403,
        ),
        Refused::InvalidNumber(error) => refusal(
            Code::InvalidArgument,
            error.to_string(),
            "invalid-number",
            484,
        ),
        Refused::Invalid(error) => ClusterError::Domain(error).into(),
    }
}

fn invalid(error: Error) -> Status {
    ClusterError::Domain(error).into()
}

fn validate_number(field: &str, number: &str, required: bool) -> Result<(), Status> {
    if required && number.trim().is_empty() {
        return Err(invalid(Error::invalid(field, "is required")));
    }
    if number.chars().count() > MAX_NUMBER_CHARS {
        return Err(invalid(Error::invalid(
            field,
            format!("is longer than {MAX_NUMBER_CHARS} characters"),
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl RouteService for RouteApi {
    async fn route_outbound(
        &self,
        request: Request<proto::RouteOutboundRequest>,
    ) -> Result<Response<proto::RouteOutboundResponse>, Status> {
        let request = request.into_inner();
        validate_name_field("tenant", &request.tenant).map_err(invalid)?;
        outbound::validate_call_id(&request.call_id).map_err(invalid)?;
        validate_number("to", &request.to, true)?;
        validate_number("from", &request.from, false)?;
        let media = outbound::media_from_proto(request.media).map_err(invalid)?;

        let view = self.view(request.min_applied_index).await?;
        let key = Self::token_key(&view)?;
        let now_ms = now_ms();
        let token = outbound::first_token(
            &request.tenant,
            &request.call_id,
            &request.to,
            media,
            now_ms,
            view.applied_index,
        );
        let outcome = outbound::route(&view, token, request.explain, now_ms).map_err(refused)?;
        let refusal = outcome.legs.is_empty().then(|| {
            let internal = outcome.destination_class == proto::DestinationClass::Internal;
            proto::Refusal {
                reason: proto::RefusalReason::NoRoute.into(),
                message: if internal {
                    "an internal extension: route it within the tenant's own system".to_owned()
                } else {
                    "no carrier can take this call now; ask with explain for why".to_owned()
                },
                sip_code: if internal { 404 } else { 503 },
            }
        });
        Ok(Response::new(proto::RouteOutboundResponse {
            normalized: outcome.normalized,
            destination_class: outcome.destination_class.into(),
            legs: outcome.legs,
            route_token: route_token::encode(&outcome.token, &key).map_err(invalid)?,
            read_state: Some(self.read_state(&view)),
            refusal,
            explanation: outcome.explanation,
        }))
    }

    async fn report_leg(
        &self,
        request: Request<proto::ReportLegRequest>,
    ) -> Result<Response<proto::ReportLegResponse>, Status> {
        let request = request.into_inner();
        outbound::validate_call_id(&request.call_id).map_err(invalid)?;
        validate_name_field("carrier", &request.carrier).map_err(invalid)?;
        let key = Self::token_key(&self.views.current())?;
        let token = route_token::decode(&request.route_token, &key).map_err(invalid)?;
        // Never answer from older configuration than the lookup that issued the token.
        let view = self.view(token.applied_index).await?;
        if token.call_id_hash != route_token::call_id_hash(&request.call_id) {
            return Err(invalid(Error::invalid(
                "route_token",
                "was issued for another call_id",
            )));
        }
        let now_ms = now_ms();
        if now_ms.saturating_sub(token.issued_ms) > route_token::TOKEN_TTL_MS {
            return Err(invalid(Error::invalid(
                "route_token",
                "has expired: start the call again with RouteOutbound",
            )));
        }
        let next = outbound::after_leg(&view, token, &request).map_err(invalid)?;
        if let Some(outcome) = outbound::leg_outcome(&request) {
            self.health.record_leg(&request.gateway, outcome);
        }
        let (outcome, token) = match next {
            Next::Stop(stop) => (proto::report_leg_response::Outcome::Stop(stop), None),
            Next::Reroute(token) => {
                let routed = outbound::route(&view, token, false, now_ms).map_err(refused)?;
                match routed.legs.into_iter().next() {
                    Some(leg) => (
                        proto::report_leg_response::Outcome::Next(leg),
                        Some(routed.token),
                    ),
                    None => (
                        proto::report_leg_response::Outcome::Stop(proto::Stop {
                            reason: proto::StopReason::NoMoreRoutes.into(),
                            message: format!(
                                "no other carrier can take the call (tried: {})",
                                routed.token.excluded_carriers.join(", ")
                            ),
                            sip_code: 503,
                        }),
                        Some(routed.token),
                    ),
                }
            }
        };
        let route_token = match token {
            Some(token) => route_token::encode(&token, &key).map_err(invalid)?,
            None => request.route_token,
        };
        Ok(Response::new(proto::ReportLegResponse {
            outcome: Some(outcome),
            route_token,
            read_state: Some(self.read_state(&view)),
        }))
    }
}
