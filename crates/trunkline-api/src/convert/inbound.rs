//! DIDs, devices, continuity plans, bindings and inbound legs to and from protobuf.

use std::collections::BTreeSet;

use crate::v1 as proto;
use trunkline_core::{
    inbound::{
        Binding, ContinuityPlan, ContinuityTarget, Destination, Device, Did, Edge, Leg, Triggers,
    },
    routing::SipUri,
    FieldError,
};

fn triggers_from_proto(triggers: Option<proto::Triggers>) -> Result<Triggers, FieldError> {
    let Some(triggers) = triggers else {
        return Ok(Triggers::default());
    };
    let failure_codes = triggers
        .failure_codes
        .iter()
        .map(|code| {
            u16::try_from(*code).map_err(|_| {
                FieldError::new(
                    "continuity.triggers.failure_codes",
                    format!("{code} is not a SIP code"),
                )
            })
        })
        .collect::<Result<BTreeSet<u16>, FieldError>>()?;
    Ok(Triggers {
        not_registered: triggers.not_registered,
        no_answer_ms: triggers.no_answer_ms,
        busy: triggers.busy,
        failure_codes,
        server_errors: triggers.server_errors,
        unreachable: triggers.unreachable,
    })
}

pub fn triggers_to_proto(triggers: &Triggers) -> proto::Triggers {
    proto::Triggers {
        not_registered: triggers.not_registered,
        no_answer_ms: triggers.no_answer_ms,
        busy: triggers.busy,
        failure_codes: triggers
            .failure_codes
            .iter()
            .map(|code| u32::from(*code))
            .collect(),
        server_errors: triggers.server_errors,
        unreachable: triggers.unreachable,
    }
}

pub fn target_to_proto(target: &ContinuityTarget) -> proto::ContinuityTarget {
    use proto::continuity_target::Destination as Wire;
    proto::ContinuityTarget {
        destination: Some(match &target.destination {
            Destination::Number(number) => Wire::Number(number.clone()),
            Destination::Sip(uri) => Wire::SipUri(uri.clone()),
            Destination::Voicemail { mailbox } => Wire::Voicemail(mailbox.clone()),
        }),
        ring_timeout_ms: target.ring_timeout_ms,
    }
}

pub fn plan_from_proto(
    plan: Option<proto::ContinuityPlan>,
) -> Result<Option<ContinuityPlan>, FieldError> {
    use proto::continuity_target::Destination as Wire;
    let Some(plan) = plan else {
        return Ok(None);
    };
    let targets = plan
        .targets
        .into_iter()
        .enumerate()
        .map(|(index, target)| {
            let destination = match target.destination {
                Some(Wire::Number(number)) => Destination::Number(number),
                Some(Wire::SipUri(uri)) => Destination::Sip(uri),
                Some(Wire::Voicemail(mailbox)) => Destination::Voicemail { mailbox },
                None => {
                    return Err(FieldError::new(
                        "continuity.targets",
                        format!("target {index} has no destination (number, sip_uri or voicemail)"),
                    ))
                }
            };
            Ok(ContinuityTarget {
                destination,
                ring_timeout_ms: target.ring_timeout_ms,
            })
        })
        .collect::<Result<Vec<_>, FieldError>>()?;
    Ok(Some(ContinuityPlan {
        targets,
        triggers: triggers_from_proto(plan.triggers)?,
    }))
}

pub fn plan_to_proto(plan: &ContinuityPlan) -> proto::ContinuityPlan {
    proto::ContinuityPlan {
        targets: plan.targets.iter().map(target_to_proto).collect(),
        triggers: Some(triggers_to_proto(&plan.triggers)),
    }
}

pub fn did_from_proto(did: Option<proto::Did>) -> Result<Did, FieldError> {
    let did = did.ok_or_else(|| FieldError::new("did", "is required"))?;
    let did = Did {
        number: did.number,
        tenant: did.tenant,
        device: (!did.device.is_empty()).then_some(did.device),
        continuity: plan_from_proto(did.continuity)?,
    };
    did.validate()?;
    Ok(did)
}

pub fn did_to_proto(did: &Did) -> proto::Did {
    proto::Did {
        number: did.number.clone(),
        tenant: did.tenant.clone(),
        device: did.device.clone().unwrap_or_default(),
        continuity: did.continuity.as_ref().map(plan_to_proto),
    }
}

pub fn device_from_proto(device: Option<proto::Device>) -> Result<Device, FieldError> {
    let device = device.ok_or_else(|| FieldError::new("device", "is required"))?;
    let device = Device {
        aor: device.aor,
        tenant: device.tenant,
        enabled: !device.disabled,
        continuity: plan_from_proto(device.continuity)?,
    };
    device.validate()?;
    Ok(device)
}

pub fn device_to_proto(device: &Device) -> proto::Device {
    proto::Device {
        aor: device.aor.clone(),
        tenant: device.tenant.clone(),
        disabled: !device.enabled,
        continuity: device.continuity.as_ref().map(plan_to_proto),
    }
}

pub fn binding_to_proto(binding: &Binding) -> proto::Binding {
    proto::Binding {
        edge: binding.edge.clone(),
        contact: binding.contact.clone(),
        expires_at_ms: binding.expires_at_ms,
        refreshed_at_ms: binding.refreshed_at_ms,
        path: binding.path.clone(),
        received: binding.received.clone().unwrap_or_default(),
    }
}

/// An inbound leg for the wire; `outbound_legs` are filled in by the caller for numbers.
pub fn inbound_leg_to_proto(leg: &Leg) -> proto::InboundLeg {
    match leg {
        Leg::Device {
            edge,
            contact,
            path,
            received,
            ring_timeout_ms,
        } => proto::InboundLeg {
            kind: proto::InboundLegKind::Device.into(),
            ring_timeout_ms: *ring_timeout_ms,
            edge: edge.clone(),
            contact: contact.clone(),
            path: path.clone(),
            received: received.clone().unwrap_or_default(),
            ..Default::default()
        },
        Leg::Continuity {
            destination,
            ring_timeout_ms,
        } => proto::InboundLeg {
            kind: proto::InboundLegKind::Continuity.into(),
            ring_timeout_ms: *ring_timeout_ms,
            target: Some(target_to_proto(&ContinuityTarget {
                destination: destination.clone(),
                ring_timeout_ms: *ring_timeout_ms,
            })),
            ..Default::default()
        },
    }
}

pub fn edge_from_proto(edge: Option<proto::Edge>) -> Result<Edge, FieldError> {
    let edge = edge.ok_or_else(|| FieldError::new("edge", "is required"))?;
    let edge = Edge {
        name: edge.name,
        uri: SipUri::parse(&edge.uri)?,
        enabled: !edge.disabled,
        probe: super::health::probe_overrides_from_proto(edge.probe)?,
    };
    edge.validate()?;
    Ok(edge)
}

pub fn edge_to_proto(edge: &Edge) -> proto::Edge {
    proto::Edge {
        name: edge.name.clone(),
        uri: edge.uri.to_string(),
        disabled: !edge.enabled,
        probe: super::health::probe_overrides_to_proto(&edge.probe),
    }
}
