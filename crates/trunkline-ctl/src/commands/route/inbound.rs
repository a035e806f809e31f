//! `trunkctl route inbound DID [--from N] [--min-index N]`: what RouteInbound answers for a
//! call to a DID: the tenant and device, whether the device is skipped and why, and the legs
//! in the order a proxy tries them (device contacts together, then each continuity target,
//! with the carrier legs of a number target).
//!
//! A call that can't be delivered (an unknown DID: NOT_FOUND; no destination, or the device
//! unreachable and continuity not applying: FAILED_PRECONDITION) prints the node's reason and
//! exits 3, like `route test` with no route.

use serde::Serialize;
use trunkline_client::{proto, Retry};

use crate::{
    commands::{check, continuity, view},
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Args)]
pub struct Args {
    /// The called number, E.164 with '+' (e.g. +14155550100).
    did: String,
    /// The calling number.
    #[arg(long, default_value = "")]
    from: String,
    /// Wait until the node has applied this log index (read your writes).
    #[arg(long, default_value_t = 0)]
    min_index: u64,
}

#[derive(Serialize)]
struct CarrierLeg {
    carrier: String,
    gateway: String,
    uri: String,
    dial_string: String,
}

#[derive(Serialize)]
struct Leg {
    /// From 1; device legs share step 1 (they ring together).
    step: u32,
    /// `device` or `continuity`.
    kind: &'static str,
    ring_timeout_ms: u64,
    /// Device legs: the edge and contact, the Path and source address.
    edge: Option<String>,
    contact: Option<String>,
    path: Vec<String>,
    received: Option<String>,
    /// Continuity legs.
    target: Option<continuity::ContinuityTarget>,
    /// A number target: the carrier legs outbound routing gives it, in order.
    outbound_legs: Vec<CarrierLeg>,
}

#[derive(Serialize)]
struct Routed {
    did: String,
    tenant: String,
    device: Option<String>,
    straight_to_continuity: bool,
    reason: Option<String>,
    legs: Vec<Leg>,
    /// For the proxy's ReportLeg calls of this call.
    route_token: String,
    read_state: view::ReadState,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    check::check_number("DID", &args.did)?;
    if !args.from.is_empty() && args.from.chars().count() > MAX_FROM_CHARS {
        return Err(crate::commands::check::usage(
            "--from",
            format!("is longer than {MAX_FROM_CHARS} characters"),
        ));
    }
    let request = proto::RouteInboundRequest {
        did: args.did.clone(),
        from: args.from,
        call_id: format!("trunkctl-route-inbound-{:016x}", rand::random::<u64>()),
        min_applied_index: args.min_index,
    };
    let response = context
        .route(
            Retry::Idempotent,
            request,
            |mut route, request| async move { route.route_inbound(request).await },
        )
        .await
        .map_err(|error| match error.status() {
            Some(status)
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::FailedPrecondition
                ) =>
            {
                Failure::ConditionFailed(format!(
                    "no inbound route for {}: {}",
                    args.did,
                    status.message()
                ))
            }
            _ => Failure::from(error),
        })?;
    let routed = Routed::new(args.did.clone(), response);
    output::emit(context.format, &routed, render)?;
    if routed.legs.is_empty() {
        return Err(Failure::ConditionFailed(format!(
            "no inbound route for {}: the node gave no legs",
            args.did
        )));
    }
    Ok(())
}

/// Longest calling number accepted, as `route test` bounds what is dialled.
const MAX_FROM_CHARS: usize = trunkline_core::routing::MAX_DIALLED_CHARS;

impl Routed {
    fn new(did: String, response: proto::RouteInboundResponse) -> Self {
        let mut step = 0;
        let mut last_was_device = false;
        let legs = response
            .legs
            .into_iter()
            .map(|leg| {
                let device =
                    proto::InboundLegKind::try_from(leg.kind) == Ok(proto::InboundLegKind::Device);
                if !(device && last_was_device) {
                    step += 1;
                }
                last_was_device = device;
                let positive = |text: String| (!text.is_empty()).then_some(text);
                Leg {
                    step,
                    kind: if device { "device" } else { "continuity" },
                    ring_timeout_ms: leg.ring_timeout_ms,
                    edge: positive(leg.edge),
                    contact: positive(leg.contact),
                    path: leg.path,
                    received: positive(leg.received),
                    target: leg.target.as_ref().map(continuity::ContinuityTarget::from),
                    outbound_legs: leg
                        .outbound_legs
                        .into_iter()
                        .map(|carrier_leg| CarrierLeg {
                            carrier: carrier_leg.carrier,
                            gateway: carrier_leg.gateway,
                            uri: carrier_leg.uri,
                            dial_string: carrier_leg.dial_string,
                        })
                        .collect(),
                }
            })
            .collect();
        Routed {
            did,
            tenant: response.tenant,
            device: (!response.device.is_empty()).then_some(response.device),
            straight_to_continuity: response.straight_to_continuity,
            reason: (!response.reason.is_empty()).then_some(response.reason),
            legs,
            route_token: response.route_token,
            read_state: response.read_state.as_ref().into(),
        }
    }
}

impl Leg {
    /// Where the leg goes: `contact via edge`, or the continuity target.
    fn destination(&self) -> String {
        match (&self.target, &self.contact) {
            (Some(target), _) => match target.kind {
                "voicemail" => format!("voicemail:{}", target.destination),
                _ => target.destination.clone(),
            },
            (None, Some(contact)) => contact.clone(),
            (None, None) => "-".to_owned(),
        }
    }

    /// For device legs: the edge, and the Path and source address when there are some.
    fn via(&self) -> String {
        let mut parts = Vec::new();
        if let Some(edge) = &self.edge {
            parts.push(format!("edge {edge}"));
        }
        if !self.path.is_empty() {
            parts.push(format!("path {}", self.path.join(",")));
        }
        if let Some(received) = &self.received {
            parts.push(format!("received {received}"));
        }
        if let Some(target) = &self.target {
            if target.kind == "number" {
                parts.push(match self.outbound_legs.len() {
                    0 => "no carrier leg".to_owned(),
                    1 => "1 carrier leg".to_owned(),
                    count => format!("{count} carrier legs"),
                });
            }
        }
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

fn render(routed: &Routed) -> String {
    let mut text = format!("DID: {} (tenant {})\n", routed.did, routed.tenant);
    text.push_str(&format!(
        "Device: {}\n",
        routed.device.as_deref().unwrap_or("none (forwards only)")
    ));
    if routed.straight_to_continuity {
        text.push_str(&format!(
            "Straight to continuity: {}\n",
            routed.reason.as_deref().unwrap_or("the device is skipped")
        ));
    }
    if routed.legs.is_empty() {
        return text;
    }
    text.push_str(
        "\nLegs, in the order to try (device contacts ring together, continuity targets one \
         at a time):\n",
    );
    text.push_str(&output::columns(
        &routed.legs,
        &[
            ("STEP", &|leg| leg.step.to_string()),
            ("KIND", &|leg| leg.kind.to_owned()),
            ("DESTINATION", &Leg::destination),
            ("VIA", &Leg::via),
            ("RING", &|leg| duration::format_ms(leg.ring_timeout_ms)),
        ],
    ));
    for leg in &routed.legs {
        if leg.outbound_legs.is_empty() {
            continue;
        }
        let carrier_legs: Vec<_> = leg.outbound_legs.iter().enumerate().collect();
        text.push_str(&format!(
            "\nCarrier legs of step {} ({}):\n",
            leg.step,
            leg.destination()
        ));
        text.push_str(&output::columns(
            &carrier_legs,
            &[
                ("ORDER", &|(index, _)| (index + 1).to_string()),
                ("CARRIER", &|(_, carrier_leg)| carrier_leg.carrier.clone()),
                ("GATEWAY", &|(_, carrier_leg)| carrier_leg.gateway.clone()),
                ("URI", &|(_, carrier_leg)| carrier_leg.uri.clone()),
                ("DIAL STRING", &|(_, carrier_leg)| {
                    carrier_leg.dial_string.clone()
                }),
            ],
        ));
    }
    text
}
