//! `trunkline.v1.RouteService`: the SIP proxies' API. Lookups read the node's routing view
//! (never Raft, never a lock the apply path holds); leg reports carry the call's state in the
//! route token, so they can land on any node.

use std::{sync::Arc, time::Instant};

use tokio::sync::OwnedSemaphorePermit;
use tonic::{metadata::MetadataValue, Code, Request, Response, Status, Streaming};
use trunkline_api::v1::{self as proto, route_service_server::RouteService};
use trunkline_core::{
    health::Liveness,
    inbound::{
        after_leg, plan_inbound, validate_number, Destination, InboundPlan, InboundRefusal, Leg,
        LegOutcome as InboundOutcome, NextStep, RegistrationUpdate, SkipReason,
    },
    policy::{BlockReason, Blocked},
    routing::{validate_name, Media},
    usage::{Admission, Admitted, CallEnd, Ended, LimitKind},
    Error,
};

use crate::{
    auth,
    cdrs::{self, CallEnding, LookupEnding, Recorder},
    cluster::{now_ms, Cluster, ReadState},
    config::ServiceLimits,
    convert,
    error::ClusterError,
    health::HealthMonitor,
    limits,
    metrics::{Outcome, Rpc},
    outbound::{self, Next, Refused},
    registrar::Registrar,
    route_stream::{self, RouteStreamAnswers},
    route_token::{self, TokenKey},
    routing_view::{RoutingView, RoutingViews},
    streams::{StreamKind, StreamSlots},
    usage::Admitter,
};

/// Metadata on a refused RouteOutbound: why, in a word a proxy can switch on.
pub const REFUSAL_HEADER: &str = "trunkline-refusal";
/// Metadata on a refused RouteOutbound: the SIP reply the proxy should send.
pub const SIP_CODE_HEADER: &str = "trunkline-sip-code";
/// Longest dialled or calling number accepted, in characters.
pub const MAX_NUMBER_CHARS: usize = 64;

#[derive(Clone)]
pub struct RouteApi {
    cluster: Arc<Cluster>,
    views: Arc<RoutingViews>,
    health: Arc<HealthMonitor>,
    registrar: Arc<Registrar>,
    admitter: Arc<Admitter>,
    recorder: Arc<Recorder>,
    /// Legs in one answer (`answers.max_legs`).
    max_legs: usize,
    /// Open `RouteStream`s (`streams.max_route_streams`).
    route_streams: StreamSlots,
}

/// The parts a [`RouteApi`] writes through.
#[derive(Clone)]
pub struct Writers {
    pub registrar: Arc<Registrar>,
    pub admitter: Arc<Admitter>,
    pub recorder: Arc<Recorder>,
}

impl RouteApi {
    pub fn new(
        cluster: Arc<Cluster>,
        views: Arc<RoutingViews>,
        health: Arc<HealthMonitor>,
        writers: Writers,
        service_limits: ServiceLimits,
    ) -> Self {
        RouteApi {
            cluster,
            views,
            health,
            registrar: writers.registrar,
            admitter: writers.admitter,
            recorder: writers.recorder,
            max_legs: service_limits.max_legs,
            route_streams: StreamSlots::new(StreamKind::Route, service_limits.max_route_streams),
        }
    }

    /// A slot for one more open `RouteStream`, or RESOURCE_EXHAUSTED naming the limit.
    pub(crate) fn route_stream_slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.route_streams.acquire()
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
        let (leader_id, staleness_ms) = self.cluster.leader_and_staleness();
        ReadState {
            node_id: self.cluster.node_id,
            applied_index: view.applied_index,
            leader_id,
            staleness_ms,
        }
        .into()
    }

    /// Admits a routed call of a tenant with usage limits through the replicated state (the
    /// grant in milliseconds), or the refusal; 0 and no write for emergency calls, calls with
    /// no legs and tenants without limits. Limits fail closed: a node that can't write refuses.
    async fn admit(
        &self,
        view: &RoutingView,
        outcome: &outbound::Outcome,
    ) -> Result<u64, proto::Refusal> {
        if outcome.legs.is_empty()
            || outcome.class == trunkline_core::routing::DestinationClass::Emergency
        {
            return Ok(0);
        }
        let state = &view.applied.state;
        // An alert's action may hold a tenant without limits to a few calls at once.
        let Some(refusal_sip_code) = state
            .routing()
            .tenant(&outcome.token.tenant)
            .map(|tenant| {
                state
                    .alerts()
                    .effective_limits(&tenant.name, &tenant.limits)
            })
            .filter(|limits| limits.is_limited())
            .map(|limits| limits.refusal_sip_code)
        else {
            return Ok(0);
        };
        // The dearest leg: the grant covers whichever carrier answers.
        let rate = outcome
            .legs
            .iter()
            .map(|leg| leg.rate_micros_per_minute)
            .max()
            .unwrap_or(0);
        let fee = outcome
            .legs
            .iter()
            .map(|leg| leg.connect_fee_micros)
            .max()
            .unwrap_or(0);
        let admission = Admission {
            tenant: outcome.token.tenant.clone(),
            call: outcome.token.call_id_hash,
            extension: outcome.token.extension.clone(),
            class: outcome.class,
            rate_micros_per_minute: rate,
            connect_fee_micros: fee,
            attempt: rand::random(),
        };
        let (tenant, call, attempt) = (admission.tenant.clone(), admission.call, admission.attempt);
        match self.admitter.admit(admission).await {
            Ok(Admitted::Yes { max_duration_ms }) => {
                self.cluster.meters.admission(true);
                Ok(max_duration_ms)
            }
            Ok(Admitted::No { limit, message }) => {
                self.cluster.meters.admission(false);
                Err(proto::Refusal {
                    reason: limit_reason(limit).into(),
                    message,
                    sip_code: u32::from(refusal_sip_code),
                    scope: String::new(),
                })
            }
            Err(error) => {
                // The admission may still apply after this answer: end the call too, so a
                // refused call never holds a slot until its grant runs out. (An end of a call
                // not admitted changes nothing.)
                let admitter = self.admitter.clone();
                tokio::spawn(async move {
                    let end = CallEnd {
                        tenant,
                        call,
                        talk_ms: 0,
                        cancel: Some(attempt),
                    };
                    let _ = admitter.end(end).await;
                });
                Err(proto::Refusal {
                    reason: proto::RefusalReason::LimitUnavailable.into(),
                    message: format!(
                        "the tenant's usage limits can't be checked now, so the call is refused: \
                     {}",
                        Status::from(error).message()
                    ),
                    sip_code: 503,
                    scope: String::new(),
                })
            }
        }
    }

    fn token_key(view: &RoutingView) -> Result<&TokenKey, Status> {
        view.token_key.as_ref().ok_or_else(|| {
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

/// A call the tenant's calling policy blocks, for the wire: the rule as a reason a proxy can
/// switch on, the SIP code to send and the scope that set the rule.
fn policy_refusal(blocked: &Blocked) -> proto::Refusal {
    let reason = match blocked.reason {
        BlockReason::ExtensionDisabled => proto::RefusalReason::PolicyDisabled,
        BlockReason::BlockedPrefix => proto::RefusalReason::PolicyBlockedPrefix,
        BlockReason::Premium => proto::RefusalReason::PolicyPremium,
        BlockReason::International => proto::RefusalReason::PolicyInternational,
        BlockReason::CountryNotAllowed => proto::RefusalReason::PolicyCountryNotAllowed,
        BlockReason::LongDistance => proto::RefusalReason::PolicyLongDistance,
        BlockReason::OutsideAllowedHours => proto::RefusalReason::PolicyOutsideAllowedHours,
        BlockReason::AlertAction => proto::RefusalReason::PolicyAlertAction,
    };
    proto::Refusal {
        reason: reason.into(),
        message: blocked.message.clone(),
        sip_code: u32::from(blocked.sip_code),
        scope: blocked.scope.key(),
    }
}

/// For a dry run of a tenant with limits: that none was checked, and the calls it holds now.
fn dry_run_usage(view: &RoutingView, tenant: &str) -> Option<String> {
    let state = &view.applied.state;
    let limits = &state.routing().tenant(tenant)?.limits;
    if !limits.is_limited() {
        return None;
    }
    let active = state
        .usage()
        .tenant(tenant)
        .map_or(0, |usage| usage.tenant.active);
    let limit = limits
        .tenant
        .concurrent_calls
        .map_or_else(|| "no limit".to_owned(), |limit| limit.to_string());
    Some(format!(
        "a dry run: the tenant's usage limits were not checked and no slot is held ({active} \
         calls admitted now, concurrent limit {limit}; `trunkctl usage show` for the rest)"
    ))
}

fn limit_reason(limit: LimitKind) -> proto::RefusalReason {
    match limit {
        LimitKind::ConcurrentCalls => proto::RefusalReason::LimitConcurrentCalls,
        LimitKind::CallsPerSecond => proto::RefusalReason::LimitCallsPerSecond,
        LimitKind::CallsPerHour => proto::RefusalReason::LimitCallsPerHour,
        LimitKind::CallsPerDay => proto::RefusalReason::LimitCallsPerDay,
        LimitKind::MinutesPerDay => proto::RefusalReason::LimitMinutesPerDay,
        LimitKind::SpendPerDay => proto::RefusalReason::LimitSpendPerDay,
        LimitKind::ActiveCalls => proto::RefusalReason::LimitActiveCalls,
    }
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

fn invalid(error: impl Into<Error>) -> Status {
    ClusterError::Domain(error.into()).into()
}

fn validate_number_text(field: &str, number: &str, required: bool) -> Result<(), Status> {
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
    type RouteStreamStream = RouteStreamAnswers;

    async fn route_stream(
        &self,
        request: Request<Streaming<proto::RouteStreamRequest>>,
    ) -> Result<Response<Self::RouteStreamStream>, Status> {
        route_stream::open(self, request)
    }

    async fn route_outbound(
        &self,
        request: Request<proto::RouteOutboundRequest>,
    ) -> Result<Response<proto::RouteOutboundResponse>, Status> {
        let started = Instant::now();
        crate::telemetry::record_call(&request.get_ref().tenant, &request.get_ref().call_id);
        let answered = self.serve_route_outbound(request).await;
        let meters = &self.cluster.meters;
        let outcome = match &answered {
            Ok(response) => match &response.get_ref().refusal {
                Some(refusal) => {
                    meters.refusal(refusal.reason);
                    Outcome::Refused
                }
                None => Outcome::Ok,
            },
            Err(status) if meters.status_refusal(status) => Outcome::Refused,
            Err(_) => Outcome::Error,
        };
        meters.request(Rpc::RouteOutbound, outcome, started);
        answered
    }

    async fn report_leg(
        &self,
        request: Request<proto::ReportLegRequest>,
    ) -> Result<Response<proto::ReportLegResponse>, Status> {
        let started = Instant::now();
        // 0 for a transport error or the proxy's own timeout (no reply came).
        let sip_code = request.get_ref().sip_code;
        crate::telemetry::record_call("", &request.get_ref().call_id);
        let answered = self.serve_report_leg(request).await;
        let meters = &self.cluster.meters;
        let outcome = match &answered {
            Ok(response) => {
                use proto::report_leg_response::Outcome as Leg;
                match &response.get_ref().outcome {
                    Some(Leg::Next(_) | Leg::NextInbound(_)) => meters.leg_verdict(Some(sip_code)),
                    Some(Leg::Stop(_)) | None => meters.leg_verdict(None),
                }
                Outcome::Ok
            }
            Err(_) => Outcome::Error,
        };
        meters.request(Rpc::ReportLeg, outcome, started);
        answered
    }

    async fn report_call_end(
        &self,
        request: Request<proto::ReportCallEndRequest>,
    ) -> Result<Response<proto::ReportCallEndResponse>, Status> {
        crate::telemetry::record_call("", &request.get_ref().call_id);
        self.measured(Rpc::ReportCallEnd, self.serve_report_call_end(request))
            .await
    }

    async fn report_registration(
        &self,
        request: Request<proto::ReportRegistrationRequest>,
    ) -> Result<Response<proto::ReportRegistrationResponse>, Status> {
        self.measured(
            Rpc::ReportRegistration,
            self.serve_report_registration(request),
        )
        .await
    }

    async fn route_inbound(
        &self,
        request: Request<proto::RouteInboundRequest>,
    ) -> Result<Response<proto::RouteInboundResponse>, Status> {
        crate::telemetry::record_call("", &request.get_ref().call_id);
        self.measured(Rpc::RouteInbound, self.serve_route_inbound(request))
            .await
    }
}

impl RouteApi {
    /// Runs the body of an RPC that answers or fails (no refusal of its own) and counts it.
    async fn measured<T>(
        &self,
        rpc: Rpc,
        body: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let started = Instant::now();
        let answered = body.await;
        let outcome = if answered.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Error
        };
        self.cluster.meters.request(rpc, outcome, started);
        answered
    }
}

/// The bodies of the route service's RPCs; the trait's methods above measure them.
impl RouteApi {
    async fn serve_route_outbound(
        &self,
        request: Request<proto::RouteOutboundRequest>,
    ) -> Result<Response<proto::RouteOutboundResponse>, Status> {
        let principal = auth::principal(&request);
        let request = request.into_inner();
        validate_name("tenant", &request.tenant).map_err(invalid)?;
        auth::require_tenant(&principal, &request.tenant)?;
        outbound::validate_call_id(&request.call_id).map_err(invalid)?;
        validate_number_text("to", &request.to, true)?;
        validate_number_text("from", &request.from, false)?;
        let media = outbound::media_from_proto(request.media).map_err(invalid)?;
        let source = outbound::source_from_proto(request.source).map_err(invalid)?;

        let view = self.view(request.min_applied_index).await?;
        let key = Self::token_key(&view)?;
        let now_ms = now_ms();
        let extension =
            outbound::calling_extension(&view, &request.tenant, &request.extension, &request.from)
                .map_err(invalid)?;
        let issue = |extension| {
            outbound::first_token(
                &request.tenant,
                &request.call_id,
                &request.to,
                media,
                outbound::Caller {
                    source,
                    extension,
                    from: request.from.clone(),
                },
                outbound::Issuer {
                    node: self.cluster.node_id,
                    now_ms,
                    applied_index: view.applied_index,
                },
            )
        };
        // The route takes the token; a number it can't read needs one again, for its record.
        let decided = crate::span!("route_decision").in_scope(|| {
            outbound::route(
                &view,
                issue(extension.clone()),
                request.explain,
                now_ms,
                self.max_legs,
                request.plan,
            )
        });
        let mut outcome = match decided {
            Ok(outcome) => outcome,
            Err(Refused::InvalidNumber(error)) => {
                if !request.dry_run {
                    let refusal = proto::Refusal {
                        reason: proto::RefusalReason::NoRoute.into(),
                        message: error.to_string(),
                        sip_code: 484,
                        scope: String::new(),
                    };
                    let mut record = cdrs::lookup_record(
                        &request.call_id,
                        &issue(extension),
                        &LookupEnding {
                            normalized: "",
                            class: None,
                            refusal: Some(&refusal),
                            now_ms,
                        },
                    );
                    record.reason = "invalid-number".to_owned();
                    self.recorder.note(record);
                }
                return Err(refused(Refused::InvalidNumber(error)));
            }
            Err(other) => return Err(refused(other)),
        };
        let mut refusal = match &outcome.blocked {
            Some(blocked) => Some(policy_refusal(blocked)),
            None => outcome.legs.is_empty().then(|| {
                let internal = outcome.destination_class == proto::DestinationClass::Internal;
                proto::Refusal {
                    reason: proto::RefusalReason::NoRoute.into(),
                    message: if internal {
                        "an internal extension: route it within the tenant's own system".to_owned()
                    } else {
                        "no carrier can take this call now; ask with explain for why".to_owned()
                    },
                    sip_code: if internal { 404 } else { 503 },
                    scope: String::new(),
                }
            }),
        };
        let mut max_duration_ms = 0;
        let mut limited = false;
        if request.dry_run {
            if let Some(usage) = dry_run_usage(&view, &request.tenant) {
                outcome.warnings.push(usage);
            }
        } else if refusal.is_none() {
            match self.admit(&view, &outcome).await {
                Ok(granted) => max_duration_ms = granted,
                Err(refused) => {
                    refusal = Some(refused);
                    limited = true;
                    outcome.legs.clear();
                }
            }
        }
        // A call the policy or a limit refused gets no token: ReportLeg must not route what
        // was refused. (A call no carrier can take keeps its token; a reroute finds no more.)
        let route_token = if outcome.blocked.is_some() || limited || request.dry_run {
            String::new()
        } else {
            route_token::encode(&outcome.token, key).map_err(invalid)?
        };
        if !request.dry_run {
            self.recorder.note(cdrs::lookup_record(
                &request.call_id,
                &outcome.token,
                &LookupEnding {
                    normalized: &outcome.normalized,
                    class: Some(outcome.class),
                    refusal: refusal.as_ref(),
                    now_ms,
                },
            ));
        }
        Ok(Response::new(proto::RouteOutboundResponse {
            normalized: outcome.normalized,
            destination_class: outcome.destination_class.into(),
            legs: outcome.legs,
            route_token,
            read_state: Some(self.read_state(&view)),
            refusal,
            explanation: outcome.explanation,
            warnings: outcome.warnings,
            degraded: outcome.degraded,
            max_duration_ms,
        }))
    }

    async fn serve_report_leg(
        &self,
        request: Request<proto::ReportLegRequest>,
    ) -> Result<Response<proto::ReportLegResponse>, Status> {
        let principal = auth::principal(&request);
        let request = request.into_inner();
        outbound::validate_call_id(&request.call_id).map_err(invalid)?;
        if request.route_token.is_empty() {
            return Err(invalid(Error::invalid(
                "route_token",
                "is required: the route_token of the answer (or of the last leg report) for \
                 this call",
            )));
        }
        let current = self.views.current();
        let key = Self::token_key(&current)?;
        let token = match route_token::decode_any(&request.route_token, key)? {
            route_token::Token::Outbound(token) => token,
            route_token::Token::Inbound(token) => {
                // The DID's tenant, as the lookup that issued the token saw it.
                let view = self.view(token.applied_index).await?;
                let inbound = view.applied.state.inbound();
                let tenant = inbound.did(&token.did).map(|did| did.tenant.as_str());
                auth::require_owner(&principal, tenant)?;
                return self.report_inbound_leg(request, token, key).await;
            }
        };
        auth::require_tenant(&principal, &token.tenant)?;
        if request.carrier.is_empty() {
            return Err(invalid(Error::invalid(
                "carrier",
                "is required: the carrier of the leg that ended, as the route answer named it",
            )));
        }
        validate_name("carrier", &request.carrier).map_err(invalid)?;
        // The token and the call's record keep the gateway's name.
        if !request.gateway.is_empty() {
            validate_name("gateway", &request.gateway).map_err(invalid)?;
        }
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
        if request.planned {
            // The proxy follows its plan: no next leg to work out, no token to sign.
            return Ok(Response::new(proto::ReportLegResponse {
                outcome: None,
                route_token: String::new(),
                read_state: Some(self.read_state(&view)),
            }));
        }
        let (outcome, token) = match next {
            Next::Stop(stop, token) => (proto::report_leg_response::Outcome::Stop(stop), token),
            Next::Reroute(token) => {
                let routed = crate::span!("route_decision")
                    .in_scope(|| outbound::route(&view, token, false, now_ms, self.max_legs, false))
                    .map_err(refused)?;
                match routed.legs.into_iter().next() {
                    Some(leg) => (proto::report_leg_response::Outcome::Next(leg), routed.token),
                    None => (
                        proto::report_leg_response::Outcome::Stop(proto::Stop {
                            reason: proto::StopReason::NoMoreRoutes.into(),
                            message: format!(
                                "no other carrier can take the call (tried: {})",
                                routed.token.excluded_carriers.join(", ")
                            ),
                            sip_code: 503,
                        }),
                        routed.token,
                    ),
                }
            }
        };
        // Always a new token: it records the leg just reported, for the call's record.
        let route_token = route_token::encode(&token, key).map_err(invalid)?;
        Ok(Response::new(proto::ReportLegResponse {
            outcome: Some(outcome),
            route_token,
            read_state: Some(self.read_state(&view)),
        }))
    }

    async fn serve_report_call_end(
        &self,
        request: Request<proto::ReportCallEndRequest>,
    ) -> Result<Response<proto::ReportCallEndResponse>, Status> {
        let principal = auth::principal(&request);
        let request = request.into_inner();
        outbound::validate_call_id(&request.call_id).map_err(invalid)?;
        let view = self.views.current();
        let key = Self::token_key(&view)?;
        // No age limit here: a call's end may come hours after its token was issued.
        let token = route_token::decode(&request.route_token, key)?;
        auth::require_tenant(&principal, &token.tenant)?;
        if token.call_id_hash != route_token::call_id_hash(&request.call_id) {
            return Err(invalid(Error::invalid(
                "route_token",
                "was issued for another call_id",
            )));
        }
        let token =
            outbound::with_tried_legs(token, &request.legs, request.answered).map_err(invalid)?;
        let talk_ms = if request.answered {
            if request.answer_time_ms == 0 {
                return Err(invalid(Error::invalid(
                    "answer_time_ms",
                    "is required for an answered call (unix milliseconds)",
                )));
            }
            request
                .end_time_ms
                .checked_sub(request.answer_time_ms)
                .ok_or_else(|| {
                    invalid(Error::invalid(
                        "end_time_ms",
                        format!(
                            "{} is before answer_time_ms {}",
                            request.end_time_ms, request.answer_time_ms
                        ),
                    ))
                })?
        } else {
            0
        };
        let record = cdrs::end_record(
            &view,
            &request.call_id,
            &token,
            &CallEnding {
                answered: request.answered,
                answer_ms: request.answered.then_some(request.answer_time_ms),
                end_ms: if request.end_time_ms == 0 {
                    now_ms()
                } else {
                    request.end_time_ms
                },
            },
        );
        // Tenants without limits hold no calls: only the record is written.
        let state = &view.applied.state;
        let limited = state
            .routing()
            .tenant(&token.tenant)
            .is_some_and(|tenant| tenant.limits.is_limited())
            || state.usage().tenant(&token.tenant).is_some();
        if !limited {
            self.recorder.record(record).await?;
            return Ok(Response::new(proto::ReportCallEndResponse::default()));
        }
        let end = CallEnd {
            tenant: token.tenant,
            call: token.call_id_hash,
            talk_ms,
            cancel: None,
        };
        let (ended, recorded) = tokio::join!(self.admitter.end(end), self.recorder.record(record));
        recorded?;
        Ok(Response::new(match ended? {
            Ended::Booked {
                billed_ms,
                cost_micros,
            } => proto::ReportCallEndResponse {
                released: true,
                billed_ms,
                cost_micros,
            },
            Ended::Unknown => proto::ReportCallEndResponse::default(),
        }))
    }

    async fn serve_report_registration(
        &self,
        request: Request<proto::ReportRegistrationRequest>,
    ) -> Result<Response<proto::ReportRegistrationResponse>, Status> {
        let principal = auth::principal(&request);
        let request = request.into_inner();
        // A proxy of some tenants reports only their devices' registrations.
        let view = self.views.current();
        let device = view.applied.state.inbound().device(&request.aor);
        auth::require_owner(&principal, device.map(|device| device.tenant.as_str()))?;
        let update = RegistrationUpdate {
            aor: request.aor,
            edge: request.edge,
            contact: request.contact,
            expires_in_ms: u64::from(request.expires_s) * 1_000,
            path: trunkline_core::inbound::path_entries(&request.path).map_err(invalid)?,
            received: (!request.received.is_empty()).then_some(request.received),
        };
        // Checked here so one bad report never fails the batch it would join.
        update.validate().map_err(invalid)?;
        let applied_index = self.registrar.report(update).await?;
        Ok(Response::new(proto::ReportRegistrationResponse {
            applied_index,
        }))
    }

    async fn serve_route_inbound(
        &self,
        request: Request<proto::RouteInboundRequest>,
    ) -> Result<Response<proto::RouteInboundResponse>, Status> {
        let principal = auth::principal(&request);
        let request = request.into_inner();
        validate_number("did", &request.did).map_err(invalid)?;
        outbound::validate_call_id(&request.call_id).map_err(invalid)?;
        validate_number_text("from", &request.from, false)?;
        let view = self.view(request.min_applied_index).await?;
        // A proxy of some tenants learns nothing of other tenants' DIDs, not even whether
        // they exist.
        let did = view.applied.state.inbound().did(&request.did);
        auth::require_owner(&principal, did.map(|did| did.tenant.as_str()))?;
        let plan = inbound_plan(&view, &request.did)?;
        let now_ms = now_ms();
        let legs = plan
            .legs
            .iter()
            .map(|leg| {
                inbound_leg(
                    &view,
                    &plan.tenant,
                    &request.call_id,
                    leg,
                    now_ms,
                    self.max_legs,
                )
            })
            .collect();
        let key = Self::token_key(&view)?;
        let token = route_token::InboundToken {
            call_id_hash: route_token::call_id_hash(&request.call_id),
            did: request.did.clone(),
            step: if plan.device_legs > 0 {
                route_token::InboundStep::DeviceFork
            } else {
                route_token::InboundStep::Continuity(0)
            },
            attempts: 0,
            issued_ms: now_ms,
            applied_index: view.applied_index,
        };
        Ok(Response::new(proto::RouteInboundResponse {
            tenant: plan.tenant.clone(),
            device: plan.device.clone().unwrap_or_default(),
            legs,
            straight_to_continuity: plan.straight_to_continuity,
            skip_reason: plan
                .reason
                .map_or(proto::SkipReason::Unspecified, |reason| match reason {
                    SkipReason::NoDevice => proto::SkipReason::NoDevice,
                    SkipReason::Disabled => proto::SkipReason::DeviceDisabled,
                    SkipReason::NotRegistered => proto::SkipReason::NotRegistered,
                    SkipReason::AllEdgesDown => proto::SkipReason::AllEdgesDown,
                })
                .into(),
            reason: plan
                .reason
                .map(|reason| reason.as_str().to_owned())
                .unwrap_or_default(),
            read_state: Some(self.read_state(&view)),
            route_token: route_token::encode_inbound(&token, key).map_err(invalid)?,
        }))
    }
}

impl RouteApi {
    /// A leg report of an inbound call: the plan is made again at the token's index (or
    /// later), and the call moves on by the plan's triggers.
    async fn report_inbound_leg(
        &self,
        request: proto::ReportLegRequest,
        mut token: route_token::InboundToken,
        key: &TokenKey,
    ) -> Result<Response<proto::ReportLegResponse>, Status> {
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
                "has expired: start the call again with RouteInbound",
            )));
        }
        let outcome = inbound_outcome(&request).map_err(invalid)?;
        let view = self.view(token.applied_index).await?;
        let plan = inbound_plan(&view, &token.did)?;
        let leg = match token.step {
            route_token::InboundStep::DeviceFork if plan.device_legs > 0 => 0,
            route_token::InboundStep::DeviceFork => plan.device_legs,
            route_token::InboundStep::Continuity(position) => {
                plan.device_legs.saturating_add(position as usize)
            }
        };
        token.attempts = token.attempts.saturating_add(1);
        let stop = |reason: proto::StopReason, sip_code: u32, message: String| {
            proto::report_leg_response::Outcome::Stop(proto::Stop {
                reason: reason.into(),
                message,
                sip_code,
            })
        };
        let outcome = if leg >= plan.legs.len() {
            stop(
                proto::StopReason::NoMoreRoutes,
                u32::from(trunkline_core::inbound::UNAVAILABLE_CODE),
                "no continuity target is left".to_owned(),
            )
        } else if token.attempts > outbound::MAX_ATTEMPTS {
            stop(
                proto::StopReason::AttemptsExhausted,
                u32::from(trunkline_core::inbound::UNAVAILABLE_CODE),
                format!("{} legs tried", outbound::MAX_ATTEMPTS),
            )
        } else {
            match after_leg(&plan, leg, outcome) {
                NextStep::Done => stop(
                    proto::StopReason::Answered,
                    request.sip_code,
                    "answered".to_owned(),
                ),
                NextStep::Stop { code } => stop(
                    proto::StopReason::CalleeAnswer,
                    u32::from(code),
                    format!("the call ends with {code}; continuity does not apply"),
                ),
                NextStep::Try { leg: next } => {
                    token.step = route_token::InboundStep::Continuity(
                        u32::try_from(next.saturating_sub(plan.device_legs)).unwrap_or(u32::MAX),
                    );
                    token.applied_index = token.applied_index.max(view.applied_index);
                    match plan.legs.get(next) {
                        Some(next_leg) => {
                            proto::report_leg_response::Outcome::NextInbound(inbound_leg(
                                &view,
                                &plan.tenant,
                                &request.call_id,
                                next_leg,
                                now_ms,
                                self.max_legs,
                            ))
                        }
                        None => stop(
                            proto::StopReason::NoMoreRoutes,
                            u32::from(trunkline_core::inbound::UNAVAILABLE_CODE),
                            "no continuity target is left".to_owned(),
                        ),
                    }
                }
            }
        };
        Ok(Response::new(proto::ReportLegResponse {
            outcome: Some(outcome),
            route_token: route_token::encode_inbound(&token, key).map_err(invalid)?,
            read_state: Some(self.read_state(&view)),
        }))
    }
}

/// The plan for a call to `did` from `view`: expiry judged at the log's time, so every node
/// at this index gives this answer; a declared edge that is down is skipped, one never
/// declared counts as up.
fn inbound_plan(view: &RoutingView, did: &str) -> Result<InboundPlan, Status> {
    let state = &view.applied.state;
    plan_inbound(state.inbound(), did, state.time_ms(), |edge| {
        state.health().liveness(edge) == Liveness::Down
    })
    .map_err(inbound_refused)
}

/// How an inbound leg ended, from a leg report.
fn inbound_outcome(request: &proto::ReportLegRequest) -> Result<InboundOutcome, Error> {
    let transport = proto::TransportError::try_from(request.transport_error).map_err(|_| {
        Error::invalid(
            "transport_error",
            format!("{} is not a transport error", request.transport_error),
        )
    })?;
    if transport != proto::TransportError::Unspecified {
        return Ok(InboundOutcome::Unreachable);
    }
    if request.no_answer {
        return Ok(InboundOutcome::NoAnswer);
    }
    match request.sip_code {
        200..=299 => Ok(InboundOutcome::Answered),
        code @ 300..=699 => Ok(InboundOutcome::Final {
            // The match arm bounds the code to 300..=699.
            code: u16::try_from(code).unwrap_or(500),
        }),
        0 => Err(Error::invalid(
            "sip_code",
            "set the final SIP code, no_answer, or transport_error when no reply came",
        )),
        code => Err(Error::invalid(
            "sip_code",
            format!("{code} is not a final SIP response code"),
        )),
    }
}

/// One inbound leg for the wire; a number target comes with its outbound carrier legs.
fn inbound_leg(
    view: &RoutingView,
    tenant: &str,
    call_id: &str,
    leg: &Leg,
    now_ms: u64,
    max_legs: usize,
) -> proto::InboundLeg {
    let mut wire = convert::inbound_leg_to_proto(leg);
    if let Leg::Continuity {
        destination: Destination::Number(number),
        ..
    } = leg
    {
        // A diversion meets the tenant's calling policy like any call its users place.
        let token = outbound::first_token(
            tenant,
            call_id,
            number,
            Media::Voice,
            outbound::Caller::default(),
            // Only the legs are used: the token is never issued.
            outbound::Issuer {
                node: 0,
                now_ms,
                applied_index: view.applied_index,
            },
        );
        if let Ok(routed) = outbound::route(view, token, false, now_ms, max_legs, false) {
            wire.outbound_legs = routed.legs;
        }
    }
    wire
}

fn inbound_refused(refused_call: InboundRefusal) -> Status {
    let (code, reason) = match refused_call {
        InboundRefusal::UnknownDid { .. } => (Code::NotFound, "unknown-did"),
        InboundRefusal::NoDestination { .. } => (Code::FailedPrecondition, "no-destination"),
        InboundRefusal::Unavailable { .. } => (Code::FailedPrecondition, "unavailable"),
    };
    refusal(
        code,
        refused_call.to_error().to_string(),
        reason,
        u32::from(refused_call.sip_code()),
    )
}
