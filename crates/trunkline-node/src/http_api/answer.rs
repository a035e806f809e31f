//! Route answers as JSON: each is at once a Kamailio rtjson document (`version`, `routing`,
//! `routes`, which `rtjson_init_routes` reads; it ignores every other key) and the decision's
//! own fields at the top level, where Kamailio's `json` module and any REST client read them
//! (`docs/http-api.md`). Refusals, stops and errors share one shape (`action: stop` with the
//! SIP code to send), so a cfg handles all three the same way.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
};

use serde_json::{json, Map, Value};
use tonic::{Code, Status};
use trunkline_api::v1::{self as proto, metadata::FIELD_HEADER};
use trunkline_core::routing::reroute_codes;

use crate::{
    config::LegTimers,
    route_service::{REFUSAL_HEADER, SIP_CODE_HEADER},
};

/// An HTTP answer: its status code and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer { status: 200, body }
    }
}

/// A proto enum's name as a word: `STOP_REASON_NO_MORE_ROUTES` → `no-more-routes`.
fn word(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix)
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn applied_index(read_state: Option<&proto::ReadState>) -> u64 {
    read_state.map_or(0, |state| state.applied_index)
}

/// One carrier leg as an rtjson route: the ready Request-URI, the gateway as the next hop,
/// the proxy's timers, and which carrier and gateway it is (rtjson ignores those two).
fn carrier_route(leg: &proto::Leg, timers: LegTimers, ring_ms: u64) -> Value {
    json!({
        "uri": leg.request_uri,
        "dst_uri": leg.uri,
        "fr_timer": timers.reply_ms,
        "fr_inv_timer": ring_ms,
        "carrier": leg.carrier,
        "gateway": leg.gateway,
        "final_codes": leg.final_codes,
        "next_codes": next_codes_pattern(&leg.final_codes),
    })
}

/// The reply codes that move a call on from this leg to the next (the core's rule, with the
/// leg's carrier's final codes), as a POSIX extended regular expression a cfg matches the
/// code against: `^(408|5[0-9][0-9])$` with no final codes, `^(408|50[0-24-9]|5[1-9][0-9])$`
/// when 503 is final. Digits are grouped by hundreds and tens, so it stays short. Making one
/// asks the core about 400 codes: each set of final codes (a carrier's configuration, so a
/// handful) is made once and remembered, not on every answer, up to [`PATTERNS_KEPT`] sets.
fn next_codes_pattern(final_codes: &[u32]) -> String {
    static PATTERNS: Mutex<BTreeMap<Vec<u32>, String>> = Mutex::new(BTreeMap::new());
    let mut patterns = PATTERNS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pattern) = patterns.get(final_codes) {
        return pattern.clone();
    }
    let pattern = build_next_codes_pattern(final_codes);
    if patterns.len() < PATTERNS_KEPT {
        patterns.insert(final_codes.to_vec(), pattern.clone());
    }
    pattern
}

/// Sets of final codes whose pattern [`next_codes_pattern`] remembers; past them (carriers
/// reconfigured that often), a pattern is made each time.
const PATTERNS_KEPT: usize = 256;

fn build_next_codes_pattern(final_codes: &[u32]) -> String {
    let finals = final_codes
        .iter()
        .filter_map(|code| u16::try_from(*code).ok())
        .collect();
    let codes = reroute_codes(&finals);
    let digits = |from: &[u16], of: fn(u16) -> u16| -> String {
        from.iter()
            .map(|&code| char::from(b'0' + of(code) as u8))
            .collect()
    };
    // A class of ascending digits, runs of three or more as ranges: "[0-24-9]".
    let class = |digits: String| {
        if digits.len() == 1 {
            return digits;
        }
        let bytes = digits.as_bytes();
        let mut class = String::from("[");
        let mut start = 0;
        while start < bytes.len() {
            let mut end = start;
            while end + 1 < bytes.len() && bytes[end + 1] == bytes[end] + 1 {
                end += 1;
            }
            if end - start >= 2 {
                class.push_str(&format!(
                    "{}-{}",
                    char::from(bytes[start]),
                    char::from(bytes[end])
                ));
            } else {
                class.extend(bytes[start..=end].iter().map(|&byte| char::from(byte)));
            }
            start = end + 1;
        }
        class.push(']');
        class
    };
    let mut alternatives = Vec::new();
    for hundred in 3..=6u16 {
        let in_hundred: Vec<u16> = codes
            .iter()
            .copied()
            .filter(|c| c / 100 == hundred)
            .collect();
        if in_hundred.len() == 100 {
            alternatives.push(format!("{hundred}[0-9][0-9]"));
            continue;
        }
        let full_tens: Vec<u16> = (0..10)
            .filter(|ten| in_hundred.iter().filter(|&&c| c / 10 % 10 == *ten).count() == 10)
            .collect();
        if !full_tens.is_empty() {
            alternatives.push(format!(
                "{hundred}{}[0-9]",
                class(digits(&full_tens, |ten| ten))
            ));
        }
        for ten in (0..10).filter(|ten| !full_tens.contains(ten)) {
            let units: Vec<u16> = in_hundred
                .iter()
                .copied()
                .filter(|c| c / 10 % 10 == ten)
                .collect();
            if !units.is_empty() {
                alternatives.push(format!(
                    "{hundred}{ten}{}",
                    class(digits(&units, |code| code % 10))
                ));
            }
        }
    }
    format!("^({})$", alternatives.join("|"))
}

/// Each route as a word a cfg picks with `{s.select,N, }` (Kamailio's `json` module reads no
/// arrays), `carrier/gateway/next-codes` (names never hold a `/` or a space, nor the pattern),
/// from the routes as [`carrier_route`] wrote them: a proxy following a plan finds the leg
/// that failed by its position.
fn route_legs(routes: &[Value]) -> String {
    routes
        .iter()
        .map(|route| {
            let part = |name: &str| route[name].as_str().unwrap_or_default().to_owned();
            format!(
                "{}/{}/{}",
                part("carrier"),
                part("gateway"),
                part("next_codes")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The part every answer shares: rtjson's keys and what the proxy does.
fn document(routing: &str, routes: Vec<Value>, action: &str) -> Map<String, Value> {
    let mut document = Map::new();
    document.insert("version".into(), json!("1.0"));
    document.insert("routing".into(), json!(routing));
    document.insert("routes".into(), Value::Array(routes));
    document.insert("action".into(), json!(action));
    document
}

/// A document that routes: rtjson's part, `action: route`, and the first route's carrier and
/// gateway (what the proxy relays to first in serial routing, so its failure route can
/// report that leg without reading the array).
fn routing_document(
    routing: &str,
    routes: Vec<Value>,
    first: Option<&proto::Leg>,
) -> Map<String, Value> {
    let mut document = document(routing, routes, "route");
    document.insert(
        "carrier".into(),
        json!(first.map_or("", |leg| leg.carrier.as_str())),
    );
    document.insert(
        "gateway".into(),
        json!(first.map_or("", |leg| leg.gateway.as_str())),
    );
    document
}

/// A document that stops the call with `sip_code`; `reason` is a word a cfg can switch on.
fn stop_document(sip_code: u32, reason: &str, message: &str) -> Map<String, Value> {
    let mut document = document("serial", Vec::new(), "stop");
    document.insert("sip_code".into(), json!(sip_code));
    document.insert("reason".into(), json!(reason));
    document.insert("message".into(), json!(message));
    document
}

/// Adds `follow`: what a cfg needs to follow the answer, as words it picks with
/// `{s.select,N, }` after a single `{json.parse,follow}` — `action`, `route_token`, `carrier`,
/// `gateway` (`-` when empty), then `route_legs`' words (a plan's routes). Kamailio's `json`
/// module parses the whole document for every field it reads: four fields and the plan's
/// legs were five parses of the answer a call; this is one. No word holds a space: names
/// and patterns can't, and a token is base64url.
fn with_follow(mut document: Map<String, Value>) -> Value {
    let word = |name: &str| match document.get(name).and_then(Value::as_str) {
        Some(value) if !value.is_empty() => value.to_owned(),
        _ => "-".to_owned(),
    };
    let mut follow = [
        word("action"),
        word("route_token"),
        word("carrier"),
        word("gateway"),
    ]
    .join(" ");
    if let Some(legs) = document.get("route_legs").and_then(Value::as_str) {
        if !legs.is_empty() {
            follow.push(' ');
            follow.push_str(legs);
        }
    }
    document.insert("follow".into(), Value::String(follow));
    Value::Object(document)
}

pub fn outbound(response: proto::RouteOutboundResponse, timers: LegTimers) -> Answer {
    let mut document = match (&response.refusal, response.legs.is_empty()) {
        (Some(refusal), _) => {
            let mut document = stop_document(
                refusal.sip_code,
                &trunkline_api::convert::refusal_reason_name(refusal.reason),
                &refusal.message,
            );
            if !refusal.scope.is_empty() {
                document.insert("scope".into(), json!(refusal.scope));
            }
            document
        }
        (None, true) => stop_document(503, "no-route", "no carrier can take this call now"),
        (None, false) => {
            let routes: Vec<Value> = response
                .legs
                .iter()
                .map(|leg| carrier_route(leg, timers, timers.ring_ms))
                .collect();
            let legs = route_legs(&routes);
            let mut document = routing_document("serial", routes, response.legs.first());
            document.insert("route_legs".into(), json!(legs));
            document
        }
    };
    document.insert("route_token".into(), json!(response.route_token));
    document.insert("normalized".into(), json!(response.normalized));
    document.insert(
        "destination_class".into(),
        json!(
            proto::DestinationClass::try_from(response.destination_class).map_or_else(
                |_| String::new(),
                |class| word(class.as_str_name(), "DESTINATION_CLASS_")
            )
        ),
    );
    document.insert("degraded".into(), json!(response.degraded));
    document.insert("max_duration_ms".into(), json!(response.max_duration_ms));
    document.insert(
        "applied_index".into(),
        json!(applied_index(response.read_state.as_ref())),
    );
    document.insert("warnings".into(), json!(response.warnings));
    if !response.explanation.is_empty() {
        let explanation: Vec<Value> = response
            .explanation
            .iter()
            .map(|candidate| {
                json!({
                    "carrier": candidate.carrier,
                    "gateway": candidate.gateway,
                    "kept": candidate.kept,
                    "rank": candidate.rank,
                    "reason": candidate.reason,
                })
            })
            .collect();
        document.insert("explanation".into(), Value::Array(explanation));
    }
    Answer::ok(with_follow(document))
}

/// One inbound leg as a document: a device's contact (forked in parallel with the other
/// contacts by [`inbound`]), or a continuity target — a number through its carriers (serial),
/// a SIP URI, or a voicemail box (`action: voicemail`, which the proxy's own voicemail
/// route serves).
fn inbound_leg_document(legs: &[&proto::InboundLeg], timers: LegTimers) -> Map<String, Value> {
    let Some(first) = legs.first() else {
        return stop_document(
            480,
            "no-more-routes",
            "no device or continuity target to ring",
        );
    };
    let ring_ms = |leg: &proto::InboundLeg| {
        if leg.ring_timeout_ms == 0 {
            timers.ring_ms
        } else {
            leg.ring_timeout_ms
        }
    };
    let mut document = if first.kind == proto::InboundLegKind::Device as i32 {
        let routes = legs
            .iter()
            .map(|leg| {
                let mut route = json!({
                    "uri": leg.contact,
                    "fr_timer": timers.reply_ms,
                    "fr_inv_timer": ring_ms(leg),
                });
                // The device is reached where its REGISTER came from, or through the edge
                // its Path names.
                let next_hop = if leg.received.is_empty() {
                    leg.path.first().cloned().unwrap_or_default()
                } else {
                    leg.received.clone()
                };
                if !next_hop.is_empty() {
                    route["dst_uri"] = json!(next_hop);
                }
                if !leg.path.is_empty() {
                    let path: Vec<String> = leg.path.iter().map(|uri| format!("<{uri}>")).collect();
                    route["path"] = json!(path.join(","));
                }
                route["edge"] = json!(leg.edge);
                route
            })
            .collect();
        let mut document = routing_document("parallel", routes, None);
        document.insert("kind".into(), json!("device"));
        document
    } else {
        let destination = first
            .target
            .as_ref()
            .and_then(|target| target.destination.as_ref());
        let mut document = match destination {
            Some(proto::continuity_target::Destination::Number(number)) => {
                if first.outbound_legs.is_empty() {
                    let mut document = stop_document(
                        503,
                        "no-route",
                        "no carrier can take the continuity call now",
                    );
                    document.insert("number".into(), json!(number));
                    document
                } else {
                    let routes = first
                        .outbound_legs
                        .iter()
                        .map(|leg| carrier_route(leg, timers, ring_ms(first)))
                        .collect();
                    let mut document =
                        routing_document("serial", routes, first.outbound_legs.first());
                    document.insert("number".into(), json!(number));
                    document
                }
            }
            Some(proto::continuity_target::Destination::SipUri(uri)) => routing_document(
                "serial",
                vec![json!({
                    "uri": uri,
                    "fr_timer": timers.reply_ms,
                    "fr_inv_timer": ring_ms(first),
                })],
                None,
            ),
            Some(proto::continuity_target::Destination::Voicemail(mailbox)) => {
                let mut document = document("serial", Vec::new(), "voicemail");
                document.insert("mailbox".into(), json!(mailbox));
                document
            }
            None => stop_document(
                500,
                "no-more-routes",
                "a continuity target without a destination",
            ),
        };
        document.insert("kind".into(), json!("continuity"));
        document
    };
    document.insert("ring_timeout_ms".into(), json!(ring_ms(first)));
    document
}

pub fn inbound(response: proto::RouteInboundResponse, timers: LegTimers) -> Answer {
    // The device's contacts ring together; without them, the first continuity target.
    let devices: Vec<&proto::InboundLeg> = response
        .legs
        .iter()
        .filter(|leg| leg.kind == proto::InboundLegKind::Device as i32)
        .collect();
    let offered = if devices.is_empty() {
        response.legs.iter().take(1).collect()
    } else {
        devices
    };
    let mut document = inbound_leg_document(&offered, timers);
    document.insert("route_token".into(), json!(response.route_token));
    document.insert("tenant".into(), json!(response.tenant));
    document.insert("device".into(), json!(response.device));
    document.insert(
        "skip_reason".into(),
        json!(proto::SkipReason::try_from(response.skip_reason)
            .ok()
            .filter(|reason| *reason != proto::SkipReason::Unspecified)
            .map_or_else(String::new, |reason| word(
                reason.as_str_name(),
                "SKIP_REASON_"
            ))),
    );
    document.insert("skip_message".into(), json!(response.reason));
    document.insert(
        "applied_index".into(),
        json!(applied_index(response.read_state.as_ref())),
    );
    Answer::ok(with_follow(document))
}

pub fn leg(response: proto::ReportLegResponse, timers: LegTimers) -> Answer {
    use proto::report_leg_response::Outcome;
    let mut document = match &response.outcome {
        Some(Outcome::Next(leg)) => routing_document(
            "serial",
            vec![carrier_route(leg, timers, timers.ring_ms)],
            Some(leg),
        ),
        Some(Outcome::NextInbound(leg)) => inbound_leg_document(&[leg], timers),
        Some(Outcome::Stop(stop)) => stop_document(
            stop.sip_code,
            &proto::StopReason::try_from(stop.reason).map_or_else(
                |_| "unknown".to_owned(),
                |reason| word(reason.as_str_name(), "STOP_REASON_"),
            ),
            &stop.message,
        ),
        // A planned report: taken, and nothing to follow (the proxy has the plan).
        None => {
            let mut document = Map::new();
            document.insert("action".into(), json!("recorded"));
            document
        }
    };
    if !response.route_token.is_empty() {
        document.insert("route_token".into(), json!(response.route_token));
    }
    document.insert(
        "applied_index".into(),
        json!(applied_index(response.read_state.as_ref())),
    );
    Answer::ok(with_follow(document))
}

pub fn registration(response: proto::ReportRegistrationResponse) -> Answer {
    Answer::ok(json!({ "applied_index": response.applied_index }))
}

pub fn call_end(response: proto::ReportCallEndResponse) -> Answer {
    Answer::ok(json!({
        "released": response.released,
        "billed_ms": response.billed_ms,
        "cost_micros": response.cost_micros,
    }))
}

/// The answer to a batch of reports (`/v1/call-ends`): how many there were, ended and
/// failed, and each report's own answer in order, with its line (from 1) and HTTP status.
/// The batch's status is 200 unless every report failed for a reason another node might not
/// have (all 5xx): then the first one's, so a proxy's node walk sends the batch to the next
/// node (a report already written there is a duplicate the record store ignores).
pub fn batch(answers: Vec<Answer>) -> Answer {
    let reports = answers.len();
    let failed = answers.iter().filter(|answer| answer.status != 200).count();
    let status = match answers.first() {
        Some(first) if answers.iter().all(|answer| answer.status >= 500) => first.status,
        _ => 200,
    };
    let results: Vec<Value> = answers
        .into_iter()
        .enumerate()
        .map(|(index, answer)| {
            let mut result = match answer.body {
                Value::Object(object) => object,
                other => Map::from_iter([("answer".to_owned(), other)]),
            };
            result.insert("line".into(), json!(index + 1));
            result.insert("status".into(), json!(answer.status));
            Value::Object(result)
        })
        .collect();
    Answer {
        status,
        body: json!({
            "reports": reports,
            "ended": reports - failed,
            "failed": failed,
            "results": results,
        }),
    }
}

/// The HTTP status for a gRPC code. Every 5xx means "ask another node": Kamailio's
/// `http_client` fails over at 500 and above and hands the cfg no 5xx body, so only what
/// another node could answer differently is a 5xx.
fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::FailedPrecondition => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::DeadlineExceeded => 504,
        Code::Unavailable => 503,
        Code::Unimplemented => 501,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

/// The gRPC code's name as the gRPC spec writes it, lower case.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The SIP code a proxy should send for an error without a refusal's own.
fn default_sip_code(code: Code) -> u32 {
    match code {
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::Unauthenticated | Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::ResourceExhausted | Code::Unavailable | Code::DeadlineExceeded => 503,
        _ => 500,
    }
}

/// The answer for a refused request: the status's code as HTTP, the field it is about, the
/// refusal's reason and SIP code when the RPC gave them.
pub fn error(status: &Status) -> Answer {
    let header = |name: &str| {
        status
            .metadata()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let code = status.code();
    let sip_code = header(SIP_CODE_HEADER)
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| default_sip_code(code));
    let error = code_name(code);
    let reason = header(REFUSAL_HEADER).unwrap_or_else(|| error.to_owned());
    let mut document = stop_document(sip_code, &reason, status.message());
    document.insert("error".into(), json!(error));
    if let Some(field) = header(FIELD_HEADER) {
        document.insert("field".into(), json!(field));
    }
    Answer {
        status: http_status(code),
        body: with_follow(document),
    }
}

/// The answer for an error of the HTTP layer itself (a wrong method, an oversized body).
pub fn http_error(status: u16, error: &str, message: &str) -> Answer {
    let mut document = stop_document(500, error, message);
    document.insert("error".into(), json!(error));
    Answer {
        status,
        body: with_follow(document),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    #[test]
    fn a_batch_is_refused_as_a_whole_only_when_every_report_could_go_elsewhere() {
        let ended = || call_end(proto::ReportCallEndResponse::default());
        let unavailable = || error(&Status::unavailable("no leader"));
        let invalid = || error(&Status::invalid_argument("bad"));

        let mixed = batch(vec![ended(), invalid(), unavailable()]);
        assert_eq!(mixed.status, 200);
        assert_eq!(mixed.body["reports"], 3);
        assert_eq!(mixed.body["ended"], 1);
        assert_eq!(mixed.body["failed"], 2);
        assert_eq!(mixed.body["results"][0]["line"], 1);
        assert_eq!(mixed.body["results"][0]["status"], 200);
        assert_eq!(mixed.body["results"][1]["status"], 400);
        assert_eq!(mixed.body["results"][2]["status"], 503);

        let all_failed_here = batch(vec![
            unavailable(),
            error(&Status::deadline_exceeded("slow")),
        ]);
        assert_eq!(all_failed_here.status, 503, "the node walk moves on");
        assert_eq!(all_failed_here.body["failed"], 2);

        assert_eq!(
            batch(vec![invalid(), invalid()]).status,
            200,
            "another node can't do better"
        );
    }

    fn leg(carrier: &str, gateway: &str) -> proto::Leg {
        proto::Leg {
            carrier: carrier.into(),
            gateway: gateway.into(),
            uri: format!("sip:{gateway}.example:5060"),
            dial_string: "442071234567".into(),
            request_uri: format!("sip:442071234567@{gateway}.example:5060"),
            ..Default::default()
        }
    }

    fn timers() -> LegTimers {
        LegTimers {
            reply_ms: 2_000,
            ring_ms: 90_000,
        }
    }

    #[test]
    fn an_outbound_answer_is_an_rtjson_document_with_the_first_legs_names_on_top() {
        let answer = outbound(
            proto::RouteOutboundResponse {
                normalized: "+442071234567".into(),
                destination_class: proto::DestinationClass::National.into(),
                legs: vec![leg("carrier-a", "gw1"), leg("carrier-b", "gw2")],
                route_token: "token".into(),
                read_state: Some(proto::ReadState {
                    applied_index: 42,
                    ..Default::default()
                }),
                ..Default::default()
            },
            timers(),
        );
        assert_eq!(answer.status, 200);
        let body = &answer.body;
        assert_eq!(body["version"], "1.0");
        assert_eq!(body["routing"], "serial");
        assert_eq!(body["action"], "route");
        assert_eq!(body["carrier"], "carrier-a");
        assert_eq!(body["gateway"], "gw1");
        assert_eq!(body["route_token"], "token");
        assert_eq!(body["destination_class"], "national");
        assert_eq!(body["applied_index"], 42);
        let routes = body["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0]["uri"], "sip:442071234567@gw1.example:5060");
        assert_eq!(routes[0]["dst_uri"], "sip:gw1.example:5060");
        assert_eq!(routes[0]["fr_timer"], 2_000);
        assert_eq!(routes[0]["fr_inv_timer"], 90_000);
        assert_eq!(routes[1]["carrier"], "carrier-b");
        // One field a cfg parses once, the rest picked as words.
        assert_eq!(
            body["follow"],
            "route token carrier-a gw1 carrier-a/gw1/^(408|5[0-9][0-9])$ \
             carrier-b/gw2/^(408|5[0-9][0-9])$"
        );
    }

    #[test]
    fn the_next_codes_pattern_is_the_cores_rule_grouped_by_digits() {
        assert_eq!(next_codes_pattern(&[]), "^(408|5[0-9][0-9])$");
        assert_eq!(next_codes_pattern(&[503]), "^(408|5[1-9][0-9]|50[0-24-9])$");
        assert_eq!(next_codes_pattern(&[408, 486]), "^(5[0-9][0-9])$");
        // Every code the pattern matches is one the core reroutes, and the other way round.
        let finals = [502, 503, 580, 408];
        let pattern = next_codes_pattern(&finals);
        let rerouted = reroute_codes(&finals.iter().map(|&c| c as u16).collect());
        for code in 300..=699u16 {
            assert_eq!(
                matches(&pattern, code),
                rerouted.contains(&code),
                "{code} against {pattern}"
            );
        }
    }

    /// Whether `code` matches `pattern` as this module writes them: `^(a|b|…)$`, each
    /// alternative three digits or `[…]` classes of digits and ranges.
    fn matches(pattern: &str, code: u16) -> bool {
        let inner = &pattern[2..pattern.len() - 2];
        let code = code.to_string();
        inner.split('|').any(|alternative| {
            let mut rest = alternative;
            code.chars().all(|digit| {
                if let Some(class) = rest.strip_prefix('[') {
                    let (class, after) = class.split_once(']').unwrap();
                    rest = after;
                    let bytes = class.as_bytes();
                    let mut index = 0;
                    let mut found = false;
                    while index < bytes.len() {
                        if index + 2 < bytes.len() && bytes[index + 1] == b'-' {
                            found |= (bytes[index]..=bytes[index + 2]).contains(&(digit as u8));
                            index += 3;
                        } else {
                            found |= bytes[index] == digit as u8;
                            index += 1;
                        }
                    }
                    found
                } else {
                    let first = rest.chars().next();
                    rest = &rest[1..];
                    first == Some(digit)
                }
            }) && rest.is_empty()
        })
    }

    #[test]
    fn a_refused_call_stops_with_the_refusals_code_and_word() {
        let answer = outbound(
            proto::RouteOutboundResponse {
                refusal: Some(proto::Refusal {
                    reason: proto::RefusalReason::PolicyPremium.into(),
                    message: "premium numbers are blocked".into(),
                    sip_code: 403,
                    scope: "tenant".into(),
                }),
                ..Default::default()
            },
            timers(),
        );
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["action"], "stop");
        assert_eq!(answer.body["sip_code"], 403);
        assert_eq!(answer.body["reason"], "policy-premium");
        assert_eq!(answer.body["routes"], json!([]));
        assert_eq!(answer.body["follow"], "stop - - -");
    }

    #[test]
    fn a_leg_report_answers_with_the_next_route_or_the_stop() {
        let next = super::leg(
            proto::ReportLegResponse {
                outcome: Some(proto::report_leg_response::Outcome::Next(leg("b", "gw2"))),
                route_token: "t2".into(),
                read_state: None,
            },
            timers(),
        );
        assert_eq!(next.body["action"], "route");
        assert_eq!(next.body["carrier"], "b");
        assert_eq!(next.body["routes"].as_array().unwrap().len(), 1);
        assert_eq!(next.body["route_token"], "t2");
        assert_eq!(next.body["follow"], "route t2 b gw2");
        let stop = super::leg(
            proto::ReportLegResponse {
                outcome: Some(proto::report_leg_response::Outcome::Stop(proto::Stop {
                    reason: proto::StopReason::NoMoreRoutes.into(),
                    message: "tried a, b".into(),
                    sip_code: 503,
                })),
                route_token: "t3".into(),
                read_state: None,
            },
            timers(),
        );
        assert_eq!(stop.body["action"], "stop");
        assert_eq!(stop.body["reason"], "no-more-routes");
        assert_eq!(stop.body["sip_code"], 503);
        assert_eq!(stop.body["follow"], "stop t3 - -");
    }

    #[test]
    fn an_inbound_answer_forks_the_devices_contacts_then_offers_continuity() {
        let device = |contact: &str, received: &str| proto::InboundLeg {
            kind: proto::InboundLegKind::Device.into(),
            ring_timeout_ms: 20_000,
            edge: "edge1".into(),
            contact: contact.into(),
            path: vec!["sip:edge1.example;lr".into()],
            received: received.into(),
            ..Default::default()
        };
        let continuity = proto::InboundLeg {
            kind: proto::InboundLegKind::Continuity.into(),
            ring_timeout_ms: 30_000,
            target: Some(proto::ContinuityTarget {
                destination: Some(proto::continuity_target::Destination::SipUri(
                    "sip:desk@pbx.example".into(),
                )),
                ring_timeout_ms: 30_000,
            }),
            ..Default::default()
        };
        let answer = inbound(
            proto::RouteInboundResponse {
                legs: vec![
                    device("sip:alice@10.0.0.5:5060", "sip:198.51.100.7:40000"),
                    device("sip:alice@10.0.0.6:5060", ""),
                    continuity.clone(),
                ],
                route_token: "in".into(),
                ..Default::default()
            },
            timers(),
        );
        let body = &answer.body;
        assert_eq!(body["routing"], "parallel");
        assert_eq!(body["kind"], "device");
        let routes = body["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0]["dst_uri"], "sip:198.51.100.7:40000");
        assert_eq!(routes[1]["dst_uri"], "sip:edge1.example;lr");
        assert_eq!(routes[1]["path"], "<sip:edge1.example;lr>");
        assert_eq!(routes[0]["fr_inv_timer"], 20_000);

        let skipped = inbound(
            proto::RouteInboundResponse {
                legs: vec![continuity],
                skip_reason: proto::SkipReason::NotRegistered.into(),
                reason: "not registered".into(),
                ..Default::default()
            },
            timers(),
        );
        assert_eq!(skipped.body["routing"], "serial");
        assert_eq!(skipped.body["kind"], "continuity");
        assert_eq!(skipped.body["skip_reason"], "not-registered");
        assert_eq!(skipped.body["routes"][0]["uri"], "sip:desk@pbx.example");
        assert_eq!(skipped.body["routes"][0]["fr_inv_timer"], 30_000);
    }

    #[test]
    fn an_error_names_the_field_the_refusal_and_the_sip_code() {
        let mut status = Status::invalid_argument("to: \"12ab\" is not a phone number");
        status
            .metadata_mut()
            .insert(FIELD_HEADER, MetadataValue::from_static("to"));
        status
            .metadata_mut()
            .insert(SIP_CODE_HEADER, MetadataValue::from(484u32));
        status
            .metadata_mut()
            .insert(REFUSAL_HEADER, MetadataValue::from_static("invalid-number"));
        let answer = error(&status);
        assert_eq!(answer.status, 400);
        assert_eq!(answer.body["action"], "stop");
        assert_eq!(answer.body["field"], "to");
        assert_eq!(answer.body["sip_code"], 484);
        assert_eq!(answer.body["reason"], "invalid-number");
        assert_eq!(answer.body["error"], "invalid_argument");
        // A cfg reading the words of every answer finds an error's too: a stop.
        assert_eq!(answer.body["follow"], "stop - - -");

        let unavailable = error(&Status::unavailable("no leader"));
        assert_eq!(unavailable.status, 503);
        assert_eq!(unavailable.body["sip_code"], 503);
        let denied = error(&Status::unauthenticated("unauthenticated"));
        assert_eq!(denied.status, 401);
        assert_eq!(denied.body["sip_code"], 403);
    }
}
