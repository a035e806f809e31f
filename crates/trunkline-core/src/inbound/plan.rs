//! From a called DID to the legs the proxy tries, and what to do when a leg ends.
//!
//! The device legs (one per live binding through an edge that is up, most recently refreshed
//! first) are rung together: the proxy forks them, and reports how the fork as a whole ended.
//! The continuity legs follow, one at a time, in the plan's order. A Number target that is
//! itself a DID is not expanded here: the proxy dials it and it arrives as a new inbound call,
//! which is why the configuration refuses continuity loops.

use serde::{Deserialize, Serialize};

use super::{model::BUSY_CODES, ContinuityPlan, Destination, InboundConfig, Triggers};
use crate::Error;

/// How long device legs ring when the plan has no no-answer time (or there is no plan).
pub const DEFAULT_RING_TIMEOUT_MS: u64 = 30_000;
/// SIP code a call stops with when the device cannot be reached and nothing moves it on.
pub const UNAVAILABLE_CODE: u16 = 480;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Leg {
    /// One binding of the device, reached through `edge`.
    Device {
        edge: String,
        contact: String,
        path: Vec<String>,
        received: Option<String>,
        ring_timeout_ms: u64,
    },
    Continuity {
        destination: Destination,
        ring_timeout_ms: u64,
    },
}

/// Why a call skips the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkipReason {
    /// The DID rings no device; it only forwards.
    NoDevice,
    Disabled,
    NotRegistered,
    /// Every live binding is through an edge that is down.
    AllEdgesDown,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoDevice => "the DID rings no device",
            SkipReason::Disabled => "the device is disabled",
            SkipReason::NotRegistered => "the device is not registered",
            SkipReason::AllEdgesDown => "every edge the device is registered at is down",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundPlan {
    pub did: String,
    pub tenant: String,
    pub device: Option<String>,
    /// Device legs first (rung together), then continuity legs (one at a time).
    pub legs: Vec<Leg>,
    /// How many of `legs` are device legs.
    pub device_legs: usize,
    /// The device is skipped; `reason` says why.
    pub straight_to_continuity: bool,
    pub reason: Option<SkipReason>,
    /// The triggers of the effective plan (defaults when there is none), for [`after_leg`].
    pub triggers: Triggers,
}

/// Why no plan could be made for a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum InboundRefusal {
    #[error("DID {did} not found")]
    UnknownDid { did: String },
    #[error("DID {did} rings no device and has no continuity target")]
    NoDestination { did: String },
    /// The device cannot be rung and continuity does not apply (the trigger for `reason` is
    /// off, or there are no targets).
    #[error("DID {did}: {} and continuity does not apply", reason.as_str())]
    Unavailable { did: String, reason: SkipReason },
}

impl InboundRefusal {
    /// The SIP code the proxy answers the caller with.
    pub fn sip_code(&self) -> u16 {
        match self {
            InboundRefusal::UnknownDid { .. } => 404,
            InboundRefusal::NoDestination { .. } | InboundRefusal::Unavailable { .. } => {
                UNAVAILABLE_CODE
            }
        }
    }

    /// The domain error for the API: NOT_FOUND naming `did`, or FAILED_PRECONDITION.
    pub fn to_error(&self) -> Error {
        match self {
            InboundRefusal::UnknownDid { did } => Error::not_found("did", did.clone()),
            other => Error::FailedPrecondition(other.to_string()),
        }
    }
}

/// Plans a call to `did` at log time `now_ms`; `edge_down` says which edges are down.
pub fn plan_inbound(
    config: &InboundConfig,
    did: &str,
    now_ms: u64,
    edge_down: impl Fn(&str) -> bool,
) -> Result<InboundPlan, InboundRefusal> {
    let Some(entry) = config.did(did) else {
        return Err(InboundRefusal::UnknownDid {
            did: did.to_owned(),
        });
    };
    let continuity = config.effective_plan(entry);
    let targets = continuity.map_or(&[][..], |plan| plan.targets.as_slice());
    let triggers = continuity
        .map(|plan: &ContinuityPlan| plan.triggers.clone())
        .unwrap_or_default();
    let ring_timeout_ms = triggers.no_answer_ms.unwrap_or(DEFAULT_RING_TIMEOUT_MS);

    let mut device_legs = Vec::new();
    let reason = match &entry.device {
        None if targets.is_empty() => {
            return Err(InboundRefusal::NoDestination {
                did: did.to_owned(),
            })
        }
        None => Some(SkipReason::NoDevice),
        Some(aor) => match config.device(aor) {
            // A DID's device cannot be deleted; treat a missing one as never registered.
            None => Some(SkipReason::NotRegistered),
            Some(device) if !device.enabled => Some(SkipReason::Disabled),
            Some(_) => {
                let live = config.registrations().live(aor, now_ms);
                if live.is_empty() {
                    Some(SkipReason::NotRegistered)
                } else {
                    device_legs = live
                        .into_iter()
                        .filter(|binding| !edge_down(&binding.edge))
                        .map(|binding| Leg::Device {
                            edge: binding.edge.clone(),
                            contact: binding.contact.clone(),
                            path: binding.path.clone(),
                            received: binding.received.clone(),
                            ring_timeout_ms,
                        })
                        .collect();
                    device_legs.is_empty().then_some(SkipReason::AllEdgesDown)
                }
            }
        },
    };
    if let Some(reason) = reason {
        let applies = match reason {
            // An operator disabled the device, or the DID only forwards: continuity is the
            // only thing the call can do, whatever the triggers say.
            SkipReason::NoDevice | SkipReason::Disabled => true,
            SkipReason::NotRegistered => triggers.not_registered,
            SkipReason::AllEdgesDown => triggers.unreachable,
        };
        if !applies || targets.is_empty() {
            return Err(InboundRefusal::Unavailable {
                did: did.to_owned(),
                reason,
            });
        }
    }
    let device_count = device_legs.len();
    let mut legs = device_legs;
    legs.extend(targets.iter().map(|target| Leg::Continuity {
        destination: target.destination.clone(),
        ring_timeout_ms: target.ring_timeout_ms,
    }));
    Ok(InboundPlan {
        did: entry.number.clone(),
        tenant: entry.tenant.clone(),
        device: entry.device.clone(),
        legs,
        device_legs: device_count,
        straight_to_continuity: reason.is_some(),
        reason,
        triggers,
    })
}

/// How a leg (for device legs: the fork of all of them) ended, as the proxy reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegOutcome {
    Answered,
    /// Rang for its ring timeout without an answer.
    NoAnswer,
    /// A final SIP code (4xx to 6xx); 486 and 600 count as busy.
    Final {
        code: u16,
    },
    /// No SIP answer at all: transport error, edge down mid-call.
    Unreachable,
}

/// What moved a call on to continuity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    NoAnswer,
    Busy,
    Failure { code: u16 },
    Unreachable,
}

/// What a trigger evaluation says about one ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Answered,
    /// Continuity applies.
    Continue(Trigger),
    /// The call ends with this SIP code.
    Stop {
        code: u16,
    },
}

/// Whether `outcome` of a device attempt moves the call on, per `triggers`. A busy device
/// with the busy trigger off stops the call with its own code (486 or 600); other codes not
/// listed as failures (404, 603...) are the callee's answer and stop it too. An unanswered or
/// unreachable device stops with 480 when its trigger is off.
pub fn evaluate(triggers: &Triggers, outcome: LegOutcome) -> Verdict {
    match outcome {
        LegOutcome::Answered => Verdict::Answered,
        LegOutcome::NoAnswer if triggers.no_answer_ms.is_some() => {
            Verdict::Continue(Trigger::NoAnswer)
        }
        LegOutcome::NoAnswer => Verdict::Stop {
            code: UNAVAILABLE_CODE,
        },
        LegOutcome::Final { code } if BUSY_CODES.contains(&code) => {
            if triggers.busy {
                Verdict::Continue(Trigger::Busy)
            } else {
                Verdict::Stop { code }
            }
        }
        LegOutcome::Final { code } if triggers.is_failure(code) => {
            Verdict::Continue(Trigger::Failure { code })
        }
        LegOutcome::Final { code } => Verdict::Stop { code },
        LegOutcome::Unreachable if triggers.unreachable => Verdict::Continue(Trigger::Unreachable),
        LegOutcome::Unreachable => Verdict::Stop {
            code: UNAVAILABLE_CODE,
        },
    }
}

/// What the proxy does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextStep {
    /// The call was answered; nothing more to do.
    Done,
    /// Try `plan.legs[leg]`, a continuity leg.
    Try { leg: usize },
    /// End the call with this SIP code.
    Stop { code: u16 },
}

/// After leg `leg` of `plan` ended with `outcome`. Any device leg index stands for the device
/// fork as a whole. On a continuity leg, running out its ring timeout always moves on to the
/// next target; other endings follow the plan's triggers. With no target left, the call stops
/// with the last code (480 for no answer or unreachable).
pub fn after_leg(plan: &InboundPlan, leg: usize, outcome: LegOutcome) -> NextStep {
    let on_device = leg < plan.device_legs;
    let verdict = match outcome {
        LegOutcome::NoAnswer if !on_device => Verdict::Continue(Trigger::NoAnswer),
        _ => evaluate(&plan.triggers, outcome),
    };
    let stop_code = |trigger: Trigger| match trigger {
        Trigger::Busy => match outcome {
            LegOutcome::Final { code } => code,
            _ => 486,
        },
        Trigger::Failure { code } => code,
        Trigger::NoAnswer | Trigger::Unreachable => UNAVAILABLE_CODE,
    };
    match verdict {
        Verdict::Answered => NextStep::Done,
        Verdict::Stop { code } => NextStep::Stop { code },
        Verdict::Continue(trigger) => {
            let next = if on_device {
                plan.device_legs
            } else {
                leg.saturating_add(1)
            };
            if next < plan.legs.len() {
                NextStep::Try { leg: next }
            } else {
                NextStep::Stop {
                    code: stop_code(trigger),
                }
            }
        }
    }
}
