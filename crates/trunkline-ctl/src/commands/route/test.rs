//! `trunkctl route test NUMBER --tenant T [--from N] [--extension E] [--source KIND] [--fax]`:
//! what RouteOutbound answers for a call, with the explanation of every candidate.
//!
//! An unknown tenant or an invalid number comes back as a gRPC error (NOT_FOUND,
//! INVALID_ARGUMENT) and exits 1 like any failed request. A valid number that the tenant's
//! calling policy blocks or no carrier can take is an answer with a refusal: the refusal and
//! the explanation are printed and the command exits 3. Configuration warnings (a tenant with
//! no emergency-capable carrier) are printed first, on stderr too.

use serde::Serialize;
use trunkline_api::convert::{destination_class_from_proto, refusal_reason_name};
use trunkline_client::{proto, Retry};
use trunkline_core::routing::{format_micros, DestinationClass, MAX_DIALLED_CHARS};

use crate::{
    commands::{check, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// The number as a user would dial it (e.g. 4155550100, 011442071234567, +442071234567).
    number: String,
    /// The tenant placing the call; its dial plan and carriers apply.
    #[arg(long)]
    tenant: String,
    /// The calling number; one of the tenant's extensions picks that extension's policy.
    #[arg(long, default_value = "")]
    from: String,
    /// The calling extension or device, for its calling policy (default: --from when it is
    /// an extension).
    #[arg(long, default_value = "")]
    extension: String,
    /// Where the call comes from, for the calling policy.
    #[arg(long, value_enum, default_value_t = SourceFlag::Phone)]
    source: SourceFlag,
    /// A fax call: only carriers with T.38.
    #[arg(long)]
    fax: bool,
    /// Wait until the node has applied this log index (read your writes).
    #[arg(long, default_value_t = 0)]
    min_index: u64,
}

#[derive(Serialize)]
struct Leg {
    carrier: String,
    gateway: String,
    uri: String,
    dial_string: String,
    /// The Request-URI a proxy sends: the dial string in the gateway's URI.
    request_uri: String,
    /// The deck prefix that priced the call.
    prefix: String,
    rate_micros_per_minute: u64,
    connect_fee_micros: u64,
}

#[derive(Serialize)]
struct Candidate {
    carrier: String,
    /// Absent for a verdict on the whole carrier.
    gateway: Option<String>,
    kept: bool,
    /// Position among the kept, from 1.
    rank: Option<u32>,
    reason: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SourceFlag {
    Phone,
    AutoAttendant,
    Voicemail,
}

impl From<SourceFlag> for proto::CallSource {
    fn from(source: SourceFlag) -> Self {
        match source {
            SourceFlag::Phone => proto::CallSource::Phone,
            SourceFlag::AutoAttendant => proto::CallSource::AutoAttendant,
            SourceFlag::Voicemail => proto::CallSource::Voicemail,
        }
    }
}

#[derive(Serialize)]
struct Refusal {
    reason: String,
    message: String,
    sip_code: u32,
    /// For a policy block, the scope whose rule blocked the call.
    #[serde(skip_serializing_if = "String::is_empty")]
    scope: String,
}

#[derive(Serialize)]
struct Routed {
    normalized: String,
    destination_class: &'static str,
    legs: Vec<Leg>,
    refusal: Option<Refusal>,
    explanation: Vec<Candidate>,
    /// What the configuration gets wrong for the tenant.
    warnings: Vec<String>,
    route_token: String,
    read_state: view::ReadState,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    check::check_name("--tenant", &args.tenant)?;
    for (flag, value) in [("NUMBER", &args.number), ("--from", &args.from)] {
        if value.chars().count() > MAX_DIALLED_CHARS {
            return Err(check::usage(
                flag,
                format!("is longer than {MAX_DIALLED_CHARS} characters"),
            ));
        }
    }
    if args.number.trim().is_empty() {
        return Err(check::usage("NUMBER", "is empty"));
    }
    let request = proto::RouteOutboundRequest {
        tenant: args.tenant.clone(),
        call_id: format!("trunkctl-route-test-{:016x}", rand::random::<u64>()),
        from: args.from,
        to: args.number.clone(),
        media: if args.fax {
            proto::Media::Fax
        } else {
            proto::Media::Voice
        }
        .into(),
        explain: true,
        min_applied_index: args.min_index,
        source: proto::CallSource::from(args.source).into(),
        extension: args.extension.clone(),
        // A test must not hold one of a limited tenant's slots.
        dry_run: true,
        plan: false,
    };
    let response = context
        .route(
            Retry::Idempotent,
            request,
            |mut route, request| async move { route.route_outbound(request).await },
        )
        .await?;
    let routed = Routed::from(response);
    for warning in &routed.warnings {
        eprintln!("{warning}");
    }
    let refused = routed.refusal.as_ref().map(|refusal| {
        if refusal.scope.is_empty() {
            format!("no route for {}: {}", args.number, refusal.message)
        } else {
            format!("{} is blocked: {}", args.number, refusal.message)
        }
    });
    output::emit(context.format, &routed, render)?;
    match refused {
        Some(message) => Err(Failure::ConditionFailed(message)),
        None => Ok(()),
    }
}

impl From<proto::RouteOutboundResponse> for Routed {
    fn from(response: proto::RouteOutboundResponse) -> Self {
        Routed {
            normalized: response.normalized,
            destination_class: destination_class_from_proto(response.destination_class)
                .map_or("unknown", DestinationClass::as_str),
            legs: response
                .legs
                .into_iter()
                .map(|leg| Leg {
                    carrier: leg.carrier,
                    gateway: leg.gateway,
                    uri: leg.uri,
                    dial_string: leg.dial_string,
                    request_uri: leg.request_uri,
                    prefix: leg.prefix,
                    rate_micros_per_minute: leg.rate_micros_per_minute,
                    connect_fee_micros: leg.connect_fee_micros,
                })
                .collect(),
            refusal: response.refusal.map(|refusal| Refusal {
                reason: refusal_reason_name(refusal.reason),
                message: refusal.message,
                sip_code: refusal.sip_code,
                scope: refusal.scope,
            }),
            warnings: response.warnings,
            explanation: response
                .explanation
                .into_iter()
                .map(|candidate| Candidate {
                    carrier: candidate.carrier,
                    gateway: (!candidate.gateway.is_empty()).then_some(candidate.gateway),
                    kept: candidate.kept,
                    rank: (candidate.kept && candidate.rank != 0).then_some(candidate.rank),
                    reason: candidate.reason,
                })
                .collect(),
            route_token: response.route_token,
            read_state: response.read_state.as_ref().into(),
        }
    }
}

fn render(routed: &Routed) -> String {
    let mut text = String::new();
    for warning in &routed.warnings {
        text.push_str(&format!("{warning}\n"));
    }
    text.push_str(&format!(
        "Number: {} ({})\n",
        routed.normalized, routed.destination_class
    ));
    if let Some(refusal) = &routed.refusal {
        if refusal.scope.is_empty() {
            text.push_str(&format!(
                "Refused: {} (SIP {})\n",
                refusal.message, refusal.sip_code
            ));
        } else {
            text.push_str(&format!(
                "Blocked by calling policy ({}): {} (SIP {})\n",
                refusal.reason.trim_start_matches("policy-"),
                refusal.message,
                refusal.sip_code
            ));
        }
    }
    if !routed.legs.is_empty() {
        let legs: Vec<(usize, &Leg)> = routed.legs.iter().enumerate().collect();
        text.push_str("\nLegs, in the order to try:\n");
        text.push_str(&output::columns(
            &legs,
            &[
                ("ORDER", &|(index, _)| (index + 1).to_string()),
                ("CARRIER", &|(_, leg)| leg.carrier.clone()),
                ("GATEWAY", &|(_, leg)| leg.gateway.clone()),
                ("URI", &|(_, leg)| leg.uri.clone()),
                ("DIAL STRING", &|(_, leg)| leg.dial_string.clone()),
                ("PREFIX", &|(_, leg)| leg.prefix.clone()),
                ("RATE/MIN", &|(_, leg)| {
                    format_micros(leg.rate_micros_per_minute)
                }),
                ("CONNECT FEE", &|(_, leg)| {
                    format_micros(leg.connect_fee_micros)
                }),
            ],
        ));
    }
    if !routed.explanation.is_empty() {
        text.push_str("\nWhy:\n");
        text.push_str(&output::columns(
            &routed.explanation,
            &[
                ("CARRIER", &|candidate| candidate.carrier.clone()),
                ("GATEWAY", &|candidate| {
                    candidate.gateway.clone().unwrap_or_else(|| "-".to_owned())
                }),
                ("VERDICT", &|candidate| {
                    if candidate.kept { "kept" } else { "dropped" }.to_owned()
                }),
                ("RANK OR REASON", &rank_or_reason),
            ],
        ));
    }
    text
}

/// The reason without the verdict the node puts in front of it ("kept: rank 1" is shown as
/// "rank 1" in the VERDICT "kept" row).
fn rank_or_reason(candidate: &Candidate) -> String {
    let reason = candidate
        .reason
        .strip_prefix("kept: ")
        .or_else(|| candidate.reason.strip_prefix("dropped: "))
        .unwrap_or(&candidate.reason);
    match (reason.is_empty(), candidate.rank) {
        (true, Some(rank)) => format!("rank {rank}"),
        _ => reason.to_owned(),
    }
}
