//! Outbound routing on a node: one route decision from a [`RoutingView`], and the reroute
//! decision when a proxy reports how a leg ended.
//!
//! Both are pure functions of the view, the request, the token and the time, so every node
//! gives the same answer: the selection seed comes from the Call-ID and travels in the token,
//! and so does the Call-ID's hash that samples the calls trying a half-open breaker's gateway.
//! The rules themselves live in the core (`select_route`, and `leg_verdict` for how a leg's
//! ending moves the call on); this module reads the protobuf request, keeps the token's
//! count of failed legs and carriers tried, and writes the protobuf answer.

use std::collections::BTreeSet;

use rand::{rngs::StdRng, SeedableRng};
use trunkline_api::v1 as proto;
use trunkline_core::{
    cdr::{LegRecord, LegTransport},
    health::{BreakerTrials, LegOutcome},
    policy::{BlockReason, Blocked, PolicyCall, PolicyScope, SourceKind},
    routing::{
        classify, leg_verdict, normalize, Candidate, DestinationClass, LegEnding,
        LegTransportError, LegVerdict, Media, RouteInput, StopCause, Tenant, Verdict,
    },
    Error,
};

use crate::{
    limits,
    route_token::{self, OfferedLeg, RouteToken},
    routing_view::RoutingView,
};

/// Legs reported in one call before Trunkline stops offering more.
pub const MAX_ATTEMPTS: u32 = 8;
/// Legs a token records for the call's record: every leg up to the attempt bound, and a few
/// reports beyond it (a proxy reporting after the stop), no more.
pub const MAX_TOKEN_LEGS: usize = MAX_ATTEMPTS as usize + 2;
/// Longest Call-ID accepted.
pub const MAX_CALL_ID_BYTES: usize = 256;

/// Why a route request was refused before any carrier was considered.
#[derive(Debug)]
pub enum Refused {
    UnknownTenant(String),
    InvalidNumber(Error),
    Invalid(Error),
}

/// A route decision, ready for the wire.
pub struct Outcome {
    pub normalized: String,
    pub class: DestinationClass,
    pub destination_class: proto::DestinationClass,
    pub legs: Vec<proto::Leg>,
    pub explanation: Vec<proto::Candidate>,
    pub token: RouteToken,
    /// The tenant's calling policy refused the call; there are no legs.
    pub blocked: Option<Blocked>,
    /// With `explain`: what the configuration gets wrong for this tenant.
    pub warnings: Vec<String>,
    /// Only gateways held down by their breakers were left, and they are offered.
    pub degraded: bool,
}

/// Who places a call, for the calling policy.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub source: SourceKind,
    /// The calling extension or device, if known.
    pub extension: Option<String>,
    /// The calling number, as the proxy gave it.
    pub from: String,
}

pub fn source_from_proto(source: i32) -> Result<SourceKind, Error> {
    match proto::CallSource::try_from(source) {
        Ok(proto::CallSource::Unspecified | proto::CallSource::Phone) => Ok(SourceKind::Phone),
        Ok(proto::CallSource::AutoAttendant) => Ok(SourceKind::AutoAttendant),
        Ok(proto::CallSource::Voicemail) => Ok(SourceKind::Voicemail),
        Err(_) => Err(Error::invalid(
            "source",
            format!("{source} is not a call source"),
        )),
    }
}

/// The calling extension: the one the proxy names, else `from` when the tenant's dial plan
/// reads it as one of its extensions. Only worked out when the tenant has a rule or a limit
/// by extension: the lookup of any other tenant does not normalise `from`.
pub fn calling_extension(
    view: &RoutingView,
    tenant: &str,
    extension: &str,
    from: &str,
) -> Result<Option<String>, Error> {
    if !extension.is_empty() {
        trunkline_core::routing::validate_name("extension", extension)?;
        return Ok(Some(extension.to_owned()));
    }
    let Some(tenant) = view
        .applied
        .state
        .routing()
        .tenant(tenant)
        .filter(|tenant| {
            !tenant.policy.extensions.is_empty() || !tenant.limits.per_extension.is_empty()
        })
    else {
        return Ok(None);
    };
    Ok(match normalize(from, &tenant.dial_plan) {
        Ok(trunkline_core::routing::Normalized::Extension(extension)) => Some(extension),
        _ => None,
    })
}

pub fn validate_call_id(call_id: &str) -> Result<(), Error> {
    if call_id.is_empty() {
        return Err(Error::invalid("call_id", "is required (the SIP Call-ID)"));
    }
    if call_id.len() > MAX_CALL_ID_BYTES {
        return Err(Error::invalid(
            "call_id",
            format!("must be 1 to {MAX_CALL_ID_BYTES} bytes (the SIP Call-ID)"),
        ));
    }
    Ok(())
}

pub fn media_from_proto(media: i32) -> Result<Media, Error> {
    match proto::Media::try_from(media) {
        Ok(proto::Media::Unspecified | proto::Media::Voice) => Ok(Media::Voice),
        Ok(proto::Media::Fax) => Ok(Media::Fax),
        Err(_) => Err(Error::invalid(
            "media",
            format!("{media} is not a media type"),
        )),
    }
}

fn tenant<'a>(view: &'a RoutingView, name: &str) -> Result<&'a Tenant, Refused> {
    view.applied
        .state
        .routing()
        .tenant(name)
        .ok_or_else(|| Refused::UnknownTenant(name.to_owned()))
}

/// Routes a call as the token describes it: its tenant, number, media, seed and the carriers
/// already excluded. The answer has at most `max_legs` legs (the first ones in order); a
/// reroute after a failed carrier routes again without it, so carriers beyond the first
/// answer are still reached. The explanation is bounded too (see [`explanation_lines`]).
///
/// With `plan` the proxy fails over on its own: the legs are the first gateway of each
/// carrier (what reroutes would offer one by one, since a failed carrier is excluded), and
/// the token keeps them priced ([`RouteToken::plan`]) for the call's end report.
pub fn route(
    view: &RoutingView,
    mut token: RouteToken,
    explain: bool,
    now_ms: u64,
    max_legs: usize,
    plan: bool,
) -> Result<Outcome, Refused> {
    let tenant = tenant(view, &token.tenant)?;
    let normalized = normalize(&token.dialled, &tenant.dial_plan)
        .map_err(|error| Refused::InvalidNumber(Error::invalid("to", error.to_string())))?;
    let class = classify(&normalized, &tenant.dial_plan, &view.high_risk);
    token.applied_index = token.applied_index.max(view.applied_index);
    let blocked = tenant
        .policy
        .check(&PolicyCall {
            destination: &normalized,
            class,
            dial_plan: &tenant.dial_plan,
            source: token.source,
            extension: token.extension.as_deref(),
            now_ms,
        })
        .err()
        .or_else(|| alert_block(view, tenant, class));
    let warnings = if explain {
        view.applied
            .state
            .routing()
            .emergency_warning(tenant)
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    let mut outcome = Outcome {
        normalized: normalized.to_string(),
        class,
        destination_class: trunkline_api::convert::destination_class_to_proto(class),
        legs: Vec::new(),
        explanation: Vec::new(),
        token,
        blocked,
        warnings,
        degraded: false,
    };
    if outcome.blocked.is_some() {
        return Ok(outcome);
    }
    // Extensions are the tenant's own PBX's business, not a carrier's.
    let Some(digits) = normalized.routing_digits() else {
        return Ok(outcome);
    };
    let rates = view.index.lookup(digits, now_ms);
    let excluded: BTreeSet<String> = outcome.token.excluded_carriers.iter().cloned().collect();
    let input = RouteInput {
        tenant,
        destination: &normalized,
        carriers: &view.carriers,
        gateways: &view.gateways,
        health: &view.health,
        concurrent_calls: None,
        rates: &rates,
        media: outcome.token.media,
        excluded_carriers: &excluded,
        explain,
    };
    let trials = BreakerTrials {
        table: view.applied.state.health(),
        call_hash: outcome.token.call_id_hash,
        now_ms,
    };
    let decision =
        input.select_with_trials(&trials, &mut StdRng::seed_from_u64(outcome.token.seed));
    let mut carriers_seen: Vec<&str> = Vec::new();
    outcome.legs = decision
        .legs
        .iter()
        // A plan takes a carrier's first gateway only (tracked only for a plan: this is the
        // lookup's hot path).
        .filter(|leg| {
            if !plan {
                return true;
            }
            if carriers_seen.contains(&leg.carrier.name.as_str()) {
                return false;
            }
            carriers_seen.push(&leg.carrier.name);
            true
        })
        // A plan's legs all go in the token: no more than the legs a call may try.
        .take(if plan {
            max_legs.min(MAX_ATTEMPTS as usize)
        } else {
            max_legs
        })
        .map(|leg| {
            let dial_string = leg.dial_string();
            proto::Leg {
                carrier: leg.carrier.name.clone(),
                gateway: leg.gateway.name.clone(),
                uri: leg.gateway.uri.to_string(),
                request_uri: leg.gateway.uri.request_uri(&dial_string),
                dial_string,
                rate_micros_per_minute: leg.rate.rate_micros_per_minute,
                connect_fee_micros: leg.rate.connect_fee_micros,
                prefix: leg.rate.prefix.to_owned(),
                final_codes: leg
                    .carrier
                    .final_codes
                    .iter()
                    .copied()
                    .map(u32::from)
                    .collect(),
            }
        })
        .collect();
    let offer = |leg: &proto::Leg| OfferedLeg {
        carrier: leg.carrier.clone(),
        gateway: leg.gateway.clone(),
        rate_micros_per_minute: leg.rate_micros_per_minute,
        connect_fee_micros: leg.connect_fee_micros,
    };
    outcome.token.offered = outcome.legs.first().map(offer);
    outcome.token.plan = if plan {
        outcome.legs.iter().map(offer).collect()
    } else {
        Vec::new()
    };
    outcome.explanation = explanation_lines(&decision.explanation, max_legs);
    outcome.degraded = decision.degraded;
    if decision.degraded {
        outcome.warnings.push(
            "degraded: every usable gateway is held down only by its circuit breaker (leg \
             reports), so those are offered rather than refusing the call"
                .to_owned(),
        );
    }
    Ok(outcome)
}

/// The explanation for the wire: a line for every leg in the answer, then at most
/// [`limits::MAX_EXPLANATION_LINES`] other lines (carriers, dropped gateways, gateways beyond
/// the answer's leg limit) in the core's order, then one line summing up the rest.
fn explanation_lines(candidates: &[Candidate<'_>], max_legs: usize) -> Vec<proto::Candidate> {
    let mut lines = Vec::new();
    let mut others_shown = 0;
    let (mut hidden_dropped, mut hidden_beyond, mut hidden_carriers) = (0usize, 0usize, 0usize);
    for candidate in candidates {
        let rank = match candidate.verdict {
            Verdict::Kept { rank } | Verdict::KeptForEmergency { rank, .. } => Some(rank),
            Verdict::Dropped(_) => None,
        };
        let is_gateway = candidate.gateway.is_some();
        let beyond_limit = is_gateway && rank.is_some_and(|rank| rank > max_legs);
        let in_answer = is_gateway && rank.is_some() && !beyond_limit;
        if !in_answer {
            if others_shown >= limits::MAX_EXPLANATION_LINES {
                match (rank, is_gateway) {
                    (None, _) => hidden_dropped += 1,
                    (Some(_), true) => hidden_beyond += 1,
                    (Some(_), false) => hidden_carriers += 1,
                }
                continue;
            }
            others_shown += 1;
        }
        let verdict = if candidate.breaker_trial {
            format!(
                "{} as a breaker trial: held down by its circuit breaker, tried by a sample of \
                 calls so a working gateway comes back before the cool-down ends",
                candidate.verdict
            )
        } else {
            candidate.verdict.to_string()
        };
        let reason = if beyond_limit {
            format!(
                "{verdict}, beyond the answer's {max_legs}-leg limit: reached by reroute only if \
                 the carriers before it fail"
            )
        } else {
            verdict
        };
        lines.push(proto::Candidate {
            carrier: candidate.carrier.to_owned(),
            gateway: candidate.gateway.unwrap_or_default().to_owned(),
            kept: in_answer || (!is_gateway && rank.is_some()),
            rank: rank
                .filter(|_| !beyond_limit)
                .map_or(0, |rank| u32::try_from(rank).unwrap_or(u32::MAX)),
            reason,
        });
    }
    let hidden = hidden_dropped + hidden_beyond + hidden_carriers;
    if hidden > 0 {
        lines.push(proto::Candidate {
            carrier: String::new(),
            gateway: String::new(),
            kept: false,
            rank: 0,
            reason: format!(
                "and {hidden} more not shown: {hidden_dropped} dropped, {hidden_beyond} gateways \
                 beyond the {max_legs}-leg limit, {hidden_carriers} kept carriers"
            ),
        });
    }
    lines
}

/// A fraud alert's automatic action in force on the tenant that refuses this call (never an
/// emergency call).
fn alert_block(view: &RoutingView, tenant: &Tenant, class: DestinationClass) -> Option<Blocked> {
    let (action, alert) = view.applied.state.alerts().blocking(&tenant.name, class)?;
    Some(Blocked {
        reason: BlockReason::AlertAction,
        scope: PolicyScope::Tenant,
        sip_code: 403,
        message: format!(
            "fraud alert {alert} put {action} on this tenant: the call is refused until an \
             operator clears it (`trunkctl tenant unblock {}`)",
            tenant.name
        ),
    })
}

/// Where and when a token is issued: the node answering the lookup, its clock, and the
/// applied index of the view it answers from.
#[derive(Clone, Copy, Debug)]
pub struct Issuer {
    pub node: u64,
    pub now_ms: u64,
    pub applied_index: u64,
}

/// The token a fresh call starts with.
pub fn first_token(
    tenant: &str,
    call_id: &str,
    dialled: &str,
    media: Media,
    caller: Caller,
    issuer: Issuer,
) -> RouteToken {
    let Issuer {
        node,
        now_ms,
        applied_index,
    } = issuer;
    let call_id_hash = route_token::call_id_hash(call_id);
    RouteToken {
        call_id_hash,
        tenant: tenant.to_owned(),
        dialled: dialled.to_owned(),
        media,
        source: caller.source,
        extension: caller.extension,
        from: caller.from,
        node,
        excluded_carriers: Vec::new(),
        legs: Vec::new(),
        offered: None,
        attempts: 0,
        seed: call_id_hash,
        issued_ms: now_ms,
        applied_index,
        plan: Vec::new(),
    }
}

/// What to do after a leg ended.
pub enum Next {
    /// The call is over (or up); the token records the leg that ended it.
    Stop(proto::Stop, RouteToken),
    /// Try another carrier; the token now excludes the failed one.
    Reroute(RouteToken),
}

fn stop(token: RouteToken, reason: proto::StopReason, sip_code: u16, message: String) -> Next {
    Next::Stop(
        proto::Stop {
            reason: reason.into(),
            message,
            sip_code: sip_code.into(),
        },
        token,
    )
}

/// A leg as the call's record keeps it.
fn leg_record(request: &proto::ReportLegRequest, ending: LegEnding) -> LegRecord {
    let (sip_code, transport) = match ending {
        LegEnding::Reply { code } => (u16::try_from(code).unwrap_or(0), None),
        LegEnding::Transport(error) => (
            0,
            Some(match error {
                LegTransportError::Timeout => LegTransport::Timeout,
                LegTransportError::Refused => LegTransport::Refused,
                LegTransportError::Unreachable => LegTransport::Unreachable,
            }),
        ),
        LegEnding::Unreported => (0, None),
    };
    LegRecord {
        carrier: request.carrier.clone(),
        gateway: request.gateway.clone(),
        sip_code,
        transport,
    }
}

/// The leg's ending as the core judges it. A transport error wins over any code in the same
/// report; with neither, proto3's zero code means the proxy reported nothing.
fn ending_from_proto(request: &proto::ReportLegRequest) -> Result<LegEnding, Error> {
    let transport = proto::TransportError::try_from(request.transport_error).map_err(|_| {
        Error::invalid(
            "transport_error",
            format!("{} is not a transport error", request.transport_error),
        )
    })?;
    Ok(match (transport, request.sip_code) {
        (proto::TransportError::Unspecified, 0) => LegEnding::Unreported,
        (proto::TransportError::Unspecified, code) => LegEnding::Reply { code },
        (proto::TransportError::Timeout, _) => LegEnding::Transport(LegTransportError::Timeout),
        (proto::TransportError::Refused, _) => LegEnding::Transport(LegTransportError::Refused),
        (proto::TransportError::Unreachable, _) => {
            LegEnding::Transport(LegTransportError::Unreachable)
        }
    })
}

/// Decides from the leg's ending whether the call moves to another carrier: the rules are
/// [`leg_verdict`]'s; here the report is read, the verdict is put into words, and a reroute
/// is counted against [`MAX_ATTEMPTS`] and excludes the failed carrier in the token.
pub fn after_leg(
    view: &RoutingView,
    mut token: RouteToken,
    request: &proto::ReportLegRequest,
) -> Result<Next, Error> {
    let carrier = view
        .applied
        .state
        .routing()
        .carrier(&request.carrier)
        .ok_or_else(|| Error::not_found("carrier", request.carrier.clone()))?;
    let ending = ending_from_proto(request)?;
    let verdict = leg_verdict(ending, &carrier.final_codes);
    if !matches!(
        verdict,
        LegVerdict::Unreported | LegVerdict::Provisional { .. } | LegVerdict::UnknownCode { .. }
    ) && token.legs.len() < MAX_TOKEN_LEGS
    {
        token.legs.push(leg_record(request, ending));
    }
    match verdict {
        LegVerdict::Unreported => Err(Error::invalid(
            "sip_code",
            "set the final SIP code, or transport_error when no reply came",
        )),
        LegVerdict::Provisional { code } => Err(Error::invalid(
            "sip_code",
            format!("{code} is provisional: report the final response"),
        )),
        LegVerdict::UnknownCode { code } => Err(Error::invalid(
            "sip_code",
            format!("{code} is not a SIP response code"),
        )),
        LegVerdict::Answered { code } => Ok(stop(
            token,
            proto::StopReason::Answered,
            code,
            "answered".into(),
        )),
        LegVerdict::Stop {
            code,
            cause: StopCause::CarrierFinal,
        } => Ok(stop(
            token,
            proto::StopReason::CarrierFinal,
            code,
            format!(
                "carrier {} marks {code} as the callee's final answer",
                carrier.name
            ),
        )),
        LegVerdict::Stop {
            code,
            cause: StopCause::Callee,
        } => Ok(stop(
            token,
            proto::StopReason::CalleeAnswer,
            code,
            format!("{code}: the callee's answer"),
        )),
        LegVerdict::Stop {
            code,
            cause: StopCause::OtherFinal,
        } => Ok(stop(
            token,
            proto::StopReason::CalleeAnswer,
            code,
            format!("{code}: a final answer that no other carrier would change"),
        )),
        LegVerdict::Reroute => {
            token.attempts = token.attempts.saturating_add(1);
            if token.attempts >= MAX_ATTEMPTS {
                return Ok(stop(
                    token,
                    proto::StopReason::AttemptsExhausted,
                    503,
                    format!("{MAX_ATTEMPTS} legs failed in this call"),
                ));
            }
            if !token.excluded_carriers.contains(&carrier.name) {
                token.excluded_carriers.push(carrier.name.clone());
            }
            Ok(Next::Reroute(token))
        }
    }
}

/// What a leg report tells the gateway's circuit breaker; `None` when it names no gateway or
/// says nothing of it (the proxy's own timer ended the leg). Call it only for a report
/// [`after_leg`] accepted.
pub fn leg_outcome(request: &proto::ReportLegRequest) -> Option<LegOutcome> {
    if request.gateway.is_empty() || request.proxy_timeout {
        return None;
    }
    let transport = proto::TransportError::try_from(request.transport_error).ok()?;
    if transport != proto::TransportError::Unspecified {
        return Some(LegOutcome::TransportFailure);
    }
    let status_code = u16::try_from(request.sip_code).ok()?;
    (200..=699)
        .contains(&status_code)
        .then_some(LegOutcome::Answer { status_code })
}

/// A call routed with a plan, at its end: `legs` are the legs the proxy tried, in order (an
/// answered call's last one the leg that answered), checked against the plan in its token.
/// The failed ones join the token's legs, for the call's record, and the answered one's
/// price becomes the price the call is billed at. No legs: the token as it is (its legs were
/// reported one by one, or the call never got to a leg).
pub fn with_tried_legs(
    mut token: RouteToken,
    legs: &[proto::CallLeg],
    answered: bool,
) -> Result<RouteToken, Error> {
    let Some(last) = legs.len().checked_sub(1) else {
        return Ok(token);
    };
    if token.plan.is_empty() {
        return Err(Error::invalid(
            "legs",
            "are for a call routed with a plan (RouteOutbound with plan): this call's token \
             already has the legs reported one by one",
        ));
    }
    if legs.len() > MAX_TOKEN_LEGS {
        return Err(Error::invalid(
            "legs",
            format!("{} legs: a call tries at most {MAX_TOKEN_LEGS}", legs.len()),
        ));
    }
    for (index, leg) in legs.iter().enumerate() {
        let number = index + 1;
        let offer = token
            .plan
            .iter()
            .find(|offer| offer.carrier == leg.carrier && offer.gateway == leg.gateway)
            .cloned()
            .ok_or_else(|| {
                Error::invalid(
                    "legs",
                    format!(
                        "leg {number} ({}/{}) is not one this call's answer offered",
                        leg.carrier, leg.gateway
                    ),
                )
            })?;
        let transport = match leg.transport_error.as_str() {
            "" => None,
            "timeout" => Some(LegTransport::Timeout),
            "refused" => Some(LegTransport::Refused),
            "unreachable" => Some(LegTransport::Unreachable),
            other => {
                return Err(Error::invalid(
                    "legs",
                    format!(
                        "leg {number}: {other:?} is not a transport error (timeout, refused or \
                         unreachable)"
                    ),
                ))
            }
        };
        let sip_code = match transport {
            Some(_) => 0,
            None => u16::try_from(leg.sip_code)
                .ok()
                .filter(|code| (200..=699).contains(code))
                .ok_or_else(|| {
                    Error::invalid(
                        "legs",
                        format!(
                            "leg {number}: {} is not a final SIP code (200 to 699); a leg no \
                             reply ended has a transport error instead",
                            leg.sip_code
                        ),
                    )
                })?,
        };
        let answered_here = (200..300).contains(&sip_code);
        if answered_here != (answered && index == last) {
            return Err(Error::invalid(
                "legs",
                if answered_here {
                    format!(
                        "leg {number} answered ({sip_code}), so it must be the last leg of an \
                         answered call"
                    )
                } else {
                    "an answered call's last leg is the one that answered: its 2xx is missing"
                        .to_owned()
                },
            ));
        }
        if answered_here {
            token.offered = Some(offer);
        } else if token.legs.len() < MAX_TOKEN_LEGS {
            token.legs.push(LegRecord {
                carrier: offer.carrier,
                gateway: offer.gateway,
                sip_code,
                transport,
            });
        }
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned() -> RouteToken {
        let mut token = first_token(
            "acme",
            "call-1@proxy",
            "+442071234567",
            Media::Voice,
            Caller::default(),
            Issuer {
                node: 1,
                now_ms: 1_000,
                applied_index: 5,
            },
        );
        token.plan = ["alpha", "beta"]
            .iter()
            .enumerate()
            .map(|(index, carrier)| OfferedLeg {
                carrier: (*carrier).to_owned(),
                gateway: format!("{carrier}-1"),
                rate_micros_per_minute: 1_000 * (index as u64 + 1),
                connect_fee_micros: 0,
            })
            .collect();
        token.offered = token.plan.first().cloned();
        token
    }

    fn leg(carrier: &str, sip_code: u32, transport_error: &str) -> proto::CallLeg {
        proto::CallLeg {
            carrier: carrier.to_owned(),
            gateway: format!("{carrier}-1"),
            sip_code,
            transport_error: transport_error.to_owned(),
        }
    }

    #[test]
    fn a_planned_calls_legs_are_kept_and_the_answering_one_prices_it() {
        let token = with_tried_legs(
            planned(),
            &[leg("alpha", 0, "timeout"), leg("beta", 200, "")],
            true,
        )
        .unwrap();
        assert_eq!(token.legs.len(), 1);
        assert_eq!(token.legs[0].transport, Some(LegTransport::Timeout));
        assert_eq!(token.offered.unwrap().carrier, "beta");

        // Unanswered: every leg kept, the price left as offered.
        let token = with_tried_legs(
            planned(),
            &[leg("alpha", 503, ""), leg("beta", 486, "")],
            false,
        )
        .unwrap();
        let codes: Vec<u16> = token.legs.iter().map(|leg| leg.sip_code).collect();
        assert_eq!(codes, [503, 486]);
        assert_eq!(token.offered.unwrap().carrier, "alpha");

        // No legs: the token as it was, with or without a plan.
        assert_eq!(with_tried_legs(planned(), &[], true).unwrap(), planned());
    }

    #[test]
    fn legs_beyond_the_bound_or_malformed_are_refused_naming_legs() {
        let too_many: Vec<proto::CallLeg> = (0..=MAX_TOKEN_LEGS)
            .map(|_| leg("alpha", 503, ""))
            .collect();
        for (legs, answered, says) in [
            (too_many, false, "at most"),
            (
                vec![leg("alpha", 0, "lost")],
                false,
                "not a transport error",
            ),
            (vec![leg("alpha", 99, "")], false, "not a final SIP code"),
            (
                vec![leg("gamma", 503, "")],
                false,
                "not one this call's answer offered",
            ),
            (
                vec![leg("alpha", 200, "")],
                false,
                "must be the last leg of an answered",
            ),
        ] {
            let error = with_tried_legs(planned(), &legs, answered).unwrap_err();
            let text = error.to_string();
            assert!(text.starts_with("legs: ") && text.contains(says), "{text}");
        }
        let mut planless = planned();
        planless.plan.clear();
        let error = with_tried_legs(planless, &[leg("alpha", 503, "")], false).unwrap_err();
        assert!(error.to_string().contains("plan"), "{error}");
    }
}
