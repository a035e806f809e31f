//! The HTTP/1.1 JSON endpoint for SIP proxies without a gRPC client (Kamailio's
//! `http_client` with `rtjson`, OpenSIPS's `rest_client`, scripts): `docs/http-api.md`.
//!
//! It is a second door to the same rooms: every request is turned into the protobuf request
//! of the `RouteService` RPC it stands for and answered by [`RouteApi`] itself, after the
//! same [`Authenticator`] check with that RPC's path, so validation, tenant scopes, limits,
//! refusals, route tokens and call records cannot differ between the two. Only the encoding
//! is this module's: [`params`] reads a query, a form or a JSON body; [`answer`] writes rtjson
//! documents and errors.
//!
//! Bounds, like the client listener's: the same accept loop (connection cap, idle timeout,
//! TLS), at most [`crate::http1::MAX_HEADER_BYTES`] of request head and [`MAX_BODY_BYTES`] of body, a
//! header read deadline, [`limits::API_MAX_IN_FLIGHT`] requests in flight (more are answered
//! 429 at once, never queued), and [`limits::API_DEFAULT_TIMEOUT`] for each request.

pub mod answer;
pub mod params;

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use tokio::sync::Semaphore;
use tonic::Status;
use trunkline_api::v1::{self as proto, route_service_server::RouteService};

use crate::{
    auth::{self, Authenticator},
    cluster::now_ms,
    config::LegTimers,
    error::ClusterError,
    http1::{Handler, HttpResponse},
    limits,
    listener::ConnectionInfo,
    route_service::RouteApi,
};
use answer::Answer;
use params::{BodyKind, Params};

/// Most bytes of a request body: parameters are small (a Path of ten entries, a token).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What one request asks for: an RPC of `RouteService`, or the node's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Outbound,
    Leg,
    Inbound,
    Registration,
    CallEnd,
    /// Many call ends in one request (`/v1/call-ends`): each line of the body one report.
    CallEnds,
    /// Many leg reports in one request (`/v1/legs`), each line a `/v1/leg`: what a proxy
    /// following a plan sends for the gateways' breakers, without waiting on each.
    Legs,
}

impl Endpoint {
    /// A batch endpoint's reports: each is a request of this endpoint.
    fn report(self) -> Option<Endpoint> {
        match self {
            Endpoint::CallEnds => Some(Endpoint::CallEnd),
            Endpoint::Legs => Some(Endpoint::Leg),
            _ => None,
        }
    }

    fn from_path(path: &str) -> Option<Endpoint> {
        Some(match path.trim_end_matches('/') {
            "/v1/outbound" => Endpoint::Outbound,
            "/v1/leg" => Endpoint::Leg,
            "/v1/inbound" => Endpoint::Inbound,
            "/v1/registration" => Endpoint::Registration,
            "/v1/call-end" => Endpoint::CallEnd,
            "/v1/call-ends" => Endpoint::CallEnds,
            "/v1/legs" => Endpoint::Legs,
            _ => return None,
        })
    }

    /// The RPC's path, for the authenticator's permission table and the audit log.
    fn rpc(self) -> &'static str {
        match self {
            Endpoint::Outbound => "/trunkline.v1.RouteService/RouteOutbound",
            // Each report of a batch is a ReportLeg or a ReportCallEnd, with its permission.
            Endpoint::Leg | Endpoint::Legs => "/trunkline.v1.RouteService/ReportLeg",
            Endpoint::Inbound => "/trunkline.v1.RouteService/RouteInbound",
            Endpoint::Registration => "/trunkline.v1.RouteService/ReportRegistration",
            Endpoint::CallEnd | Endpoint::CallEnds => "/trunkline.v1.RouteService/ReportCallEnd",
        }
    }

    /// The parameters it takes (the RPC's field names), and those that may repeat.
    fn parameters(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Endpoint::Outbound => (
                &[
                    "tenant",
                    "call_id",
                    "from",
                    "to",
                    "media",
                    "explain",
                    "min_applied_index",
                    "source",
                    "extension",
                    "dry_run",
                    "plan",
                ],
                &[],
            ),
            Endpoint::Leg | Endpoint::Legs => (
                &[
                    "call_id",
                    "route_token",
                    "carrier",
                    "gateway",
                    "sip_code",
                    "transport_error",
                    "time_to_first_reply_ms",
                    "time_to_failure_ms",
                    "no_answer",
                    "proxy_timeout",
                    "planned",
                ],
                &[],
            ),
            Endpoint::Inbound => (&["did", "from", "call_id", "min_applied_index"], &[]),
            Endpoint::Registration => (
                &["edge", "aor", "contact", "expires_s", "path", "received"],
                &["path"],
            ),
            Endpoint::CallEnd | Endpoint::CallEnds => (
                &[
                    "call_id",
                    "route_token",
                    "answered",
                    "answer_time_ms",
                    "end_time_ms",
                    "legs",
                ],
                &["legs"],
            ),
        }
    }
}

/// The HTTP endpoint's shared state: the route service it speaks for and its bounds.
pub struct HttpApi {
    route: Arc<RouteApi>,
    authenticator: Arc<Authenticator>,
    timers: LegTimers,
    in_flight: Arc<Semaphore>,
    /// Cleared when the node stops serving (a storage failure, shutting down): `/health`
    /// then answers 503 so a proxy's checks move on.
    serving: Arc<AtomicBool>,
}

impl HttpApi {
    pub fn new(
        route: Arc<RouteApi>,
        authenticator: Arc<Authenticator>,
        timers: LegTimers,
        serving: Arc<AtomicBool>,
    ) -> Self {
        HttpApi {
            route,
            authenticator,
            timers,
            in_flight: Arc::new(Semaphore::new(limits::API_MAX_IN_FLIGHT)),
            serving,
        }
    }

    async fn answer_within_bounds(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
        info: &ConnectionInfo,
    ) -> Answer {
        // Counted for the connection's idle timer while it is answered.
        let _in_flight = info.activity.start_request();
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            return answer::error(&Status::resource_exhausted(format!(
                "this node has {} requests in flight; try another node or slow down",
                limits::API_MAX_IN_FLIGHT
            )));
        };
        match tokio::time::timeout(limits::API_DEFAULT_TIMEOUT, self.answer(request, info)).await {
            Ok(answer) => answer,
            Err(_) => answer::error(&Status::deadline_exceeded(format!(
                "no answer within {:?}",
                limits::API_DEFAULT_TIMEOUT
            ))),
        }
    }

    async fn answer(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
        info: &ConnectionInfo,
    ) -> Answer {
        let (parts, body) = request.into_parts();
        if parts.uri.path() == "/health" {
            return self.health();
        }
        let Some(endpoint) = Endpoint::from_path(parts.uri.path()) else {
            return answer::http_error(
                404,
                "not_found",
                &format!(
                    "{} is not an endpoint: use /v1/outbound, /v1/leg, /v1/inbound, \
                     /v1/registration, /v1/call-end, /v1/call-ends, /v1/legs or /health",
                    parts.uri.path()
                ),
            );
        };
        if parts.method != hyper::Method::GET && parts.method != hyper::Method::POST {
            return answer::http_error(
                405,
                "method_not_allowed",
                &format!("{} is not accepted: use GET or POST", parts.method),
            );
        }
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return answer::http_error(
                    413,
                    "payload_too_large",
                    &format!("the body is over {MAX_BODY_BYTES} bytes"),
                )
            }
            Err(error) => {
                return answer::http_error(
                    400,
                    "bad_request",
                    &format!("can't read the body: {error}"),
                )
            }
        };
        let content_type = parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or("?"));
        let (accepted, repeatable) = endpoint.parameters();
        let input = BodyKind::from_content_type(content_type).and_then(|kind| {
            if endpoint.report().is_some() {
                let reports = Params::parse_batch(parts.uri.query(), &body, kind)?;
                return Ok(Input::Batch(
                    reports
                        .into_iter()
                        .map(|report| {
                            let params = report?;
                            params.check(accepted, repeatable)?;
                            Ok(params)
                        })
                        .collect(),
                ));
            }
            let params = Params::parse(parts.uri.query(), &body, kind)?;
            params.check(accepted, repeatable)?;
            Ok(Input::One(params))
        });
        let input = match input {
            Ok(input) => input,
            Err(error) => return answer::error(&field_status(error)),
        };

        let source = info
            .tcp
            .remote_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |address| address.ip());
        let authorization = bearer(parts.headers.get(hyper::header::AUTHORIZATION));
        let certificate = info.peer.as_ref().map(|peer| &peer.token);
        let principal = match self.authenticator.check(
            endpoint.rpc(),
            authorization.as_ref(),
            certificate,
            source,
            now_ms(),
        ) {
            Ok(principal) => principal,
            Err(status) => return answer::error(&status),
        };
        match input {
            Input::One(params) => self
                .call(endpoint, &params, principal)
                .await
                .unwrap_or_else(|status| answer::error(&status)),
            Input::Batch(reports) => {
                // A batch endpoint names the one its reports are each (`Endpoint::report`).
                let each = endpoint.report().unwrap_or(endpoint);
                self.batch(each, reports, principal).await
            }
        }
    }

    /// The reports of a batch (`/v1/call-ends`, `/v1/legs`), all at once: call ends' records
    /// are written together (one Raft entry for the lot, where a request each makes an entry
    /// each). Each report's answer is what the single endpoint `each` would have answered,
    /// with its line and HTTP status (`answer::batch` says what the batch's own status is).
    async fn batch(
        &self,
        each: Endpoint,
        reports: Vec<Result<Params, trunkline_core::FieldError>>,
        principal: Option<trunkline_core::auth::Principal>,
    ) -> Answer {
        let answers = join_all(reports.into_iter().map(|report| {
            let principal = principal.clone();
            async move {
                self.call(each, &report.map_err(field_status)?, principal)
                    .await
            }
        }))
        .await;
        answer::batch(
            answers
                .into_iter()
                .map(|answer| answer.unwrap_or_else(|status| answer::error(&status)))
                .collect(),
        )
    }

    /// Runs the endpoint's RPC on the route service, as a gRPC call of `principal` would.
    async fn call(
        &self,
        endpoint: Endpoint,
        params: &Params,
        principal: Option<trunkline_core::auth::Principal>,
    ) -> Result<Answer, Status> {
        let field = field_status;
        let route = &*self.route;
        Ok(match endpoint {
            Endpoint::Outbound => {
                let message = proto::RouteOutboundRequest {
                    tenant: params.text("tenant"),
                    call_id: params.text("call_id"),
                    from: params.text("from"),
                    to: params.text("to"),
                    media: params
                        .word(
                            "media",
                            &[("voice", proto::Media::Voice), ("fax", proto::Media::Fax)],
                        )
                        .map_err(field)?
                        .map_or(0, i32::from),
                    explain: params.flag("explain").map_err(field)?,
                    min_applied_index: params.number("min_applied_index").map_err(field)?,
                    source: params
                        .word(
                            "source",
                            &[
                                ("phone", proto::CallSource::Phone),
                                ("auto-attendant", proto::CallSource::AutoAttendant),
                                ("voicemail", proto::CallSource::Voicemail),
                            ],
                        )
                        .map_err(field)?
                        .map_or(0, i32::from),
                    extension: params.text("extension"),
                    dry_run: params.flag("dry_run").map_err(field)?,
                    plan: params.flag("plan").map_err(field)?,
                };
                let response = route
                    .route_outbound(auth::with_principal(message, &principal))
                    .await?
                    .into_inner();
                answer::outbound(response, self.timers)
            }
            // A batch's reports come here one by one (`batch`).
            Endpoint::Leg | Endpoint::Legs => {
                let message = proto::ReportLegRequest {
                    call_id: params.text("call_id"),
                    route_token: params.text("route_token"),
                    carrier: params.text("carrier"),
                    gateway: params.text("gateway"),
                    sip_code: params.number("sip_code").map_err(field)?,
                    transport_error: params
                        .word(
                            "transport_error",
                            &[
                                ("none", proto::TransportError::Unspecified),
                                ("timeout", proto::TransportError::Timeout),
                                ("refused", proto::TransportError::Refused),
                                ("unreachable", proto::TransportError::Unreachable),
                            ],
                        )
                        .map_err(field)?
                        .map_or(0, i32::from),
                    time_to_first_reply_ms: params
                        .number("time_to_first_reply_ms")
                        .map_err(field)?,
                    time_to_failure_ms: params.number("time_to_failure_ms").map_err(field)?,
                    no_answer: params.flag("no_answer").map_err(field)?,
                    proxy_timeout: params.flag("proxy_timeout").map_err(field)?,
                    planned: params.flag("planned").map_err(field)?,
                };
                let response = route
                    .report_leg(auth::with_principal(message, &principal))
                    .await?
                    .into_inner();
                answer::leg(response, self.timers)
            }
            Endpoint::Inbound => {
                let message = proto::RouteInboundRequest {
                    did: params.text("did"),
                    from: params.text("from"),
                    call_id: params.text("call_id"),
                    min_applied_index: params.number("min_applied_index").map_err(field)?,
                };
                let response = route
                    .route_inbound(auth::with_principal(message, &principal))
                    .await?
                    .into_inner();
                answer::inbound(response, self.timers)
            }
            Endpoint::Registration => {
                let message = proto::ReportRegistrationRequest {
                    edge: params.text("edge"),
                    aor: params.text("aor"),
                    contact: params.text("contact"),
                    expires_s: params.number("expires_s").map_err(field)?,
                    path: params.all("path"),
                    received: params.text("received"),
                };
                let response = route
                    .report_registration(auth::with_principal(message, &principal))
                    .await?
                    .into_inner();
                answer::registration(response)
            }
            Endpoint::CallEnd | Endpoint::CallEnds => {
                let message = proto::ReportCallEndRequest {
                    call_id: params.text("call_id"),
                    route_token: params.text("route_token"),
                    answered: params.flag("answered").map_err(field)?,
                    answer_time_ms: params.number("answer_time_ms").map_err(field)?,
                    end_time_ms: params.number("end_time_ms").map_err(field)?,
                    legs: params
                        .all("legs")
                        .iter()
                        .map(|leg| params::call_leg(leg))
                        .collect::<Result<_, _>>()
                        .map_err(field)?,
                };
                let response = route
                    .report_call_end(auth::with_principal(message, &principal))
                    .await?
                    .into_inner();
                answer::call_end(response)
            }
        })
    }

    fn health(&self) -> Answer {
        if self.serving.load(Ordering::SeqCst) {
            Answer {
                status: 200,
                body: serde_json::json!({ "status": "serving" }),
            }
        } else {
            answer::http_error(503, "not_serving", "this node is not serving; ask another")
        }
    }
}

/// A request's parameters: one report, or a batch's (each read on its own).
enum Input {
    One(Params),
    Batch(Vec<Result<Params, trunkline_core::FieldError>>),
}

fn field_status(error: trunkline_core::FieldError) -> Status {
    Status::from(ClusterError::from(error))
}

/// Runs `futures` together on this task and returns their outputs in order (a batch's
/// reports: at most [`params::MAX_BATCH_REPORTS`], so polling each pending one on every wake
/// costs little).
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The bearer token of an `Authorization` header: `Bearer <token>` as is, or HTTP Basic with
/// the token as the password (what Kamailio's `httpcon` URL `http://user:token@host` sends).
fn bearer(
    authorization: Option<&hyper::header::HeaderValue>,
) -> Option<hyper::header::HeaderValue> {
    let value = authorization?;
    let text = value.to_str().ok()?;
    let Some(encoded) = text.strip_prefix("Basic ") else {
        return Some(value.clone());
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (_, token) = decoded.split_once(':')?;
    format!("Bearer {token}").parse().ok()
}

impl Handler for HttpApi {
    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
        info: ConnectionInfo,
    ) -> HttpResponse {
        use tracing::Instrument;
        let span = crate::telemetry::rpc_span("http", request.uri().path(), request.headers());
        to_response(
            self.answer_within_bounds(request, &info)
                .instrument(span)
                .await,
        )
    }
}

fn to_response(answer: Answer) -> hyper::Response<Full<Bytes>> {
    let body = serde_json::to_vec(&answer.body).unwrap_or_default();
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(answer.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if answer.status == 405 {
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, POST"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authentication_carries_the_token_as_its_password() {
        let header = |text: &str| hyper::header::HeaderValue::from_str(text).unwrap();
        let basic = base64::engine::general_purpose::STANDARD.encode("trunkline:tl1.abc.secret");
        assert_eq!(
            bearer(Some(&header(&format!("Basic {basic}")))).unwrap(),
            "Bearer tl1.abc.secret"
        );
        assert_eq!(
            bearer(Some(&header("Bearer tl1.abc.secret"))).unwrap(),
            "Bearer tl1.abc.secret"
        );
        assert!(bearer(Some(&header("Basic !!!"))).is_none());
        assert!(bearer(None).is_none());
    }

    #[test]
    fn every_endpoint_names_a_route_service_rpc() {
        for path in [
            "/v1/outbound",
            "/v1/leg",
            "/v1/inbound/",
            "/v1/registration",
            "/v1/call-end",
            "/v1/call-ends",
            "/v1/legs",
        ] {
            let endpoint = Endpoint::from_path(path).unwrap();
            assert!(endpoint.rpc().starts_with("/trunkline.v1.RouteService/"));
        }
        assert!(Endpoint::from_path("/v1/admin").is_none());
    }
}
