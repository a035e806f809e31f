//! What the DID, device, continuity and edge commands share: checking a DID, a device, a
//! continuity plan or an edge with the core's own rules before anything is sent (naming the
//! flag at fault), parsing `--continuity` targets, and reading and writing the inbound
//! configuration.
//!
//! Like [`objects`](super::objects) for the routing objects, the checks build the core's model
//! from the protobuf object about to be sent, with the node's reading of empty fields (no
//! triggers: the defaults), so a mistake the node would refuse exits 2 here first. The node
//! checks again, and it alone knows the rest of the configuration (the device exists, no
//! continuity loop through other DIDs, no gateway of the edge's name).

pub use trunkline_api::convert::triggers_to_proto;
use trunkline_api::convert::{device_from_proto, did_from_proto, plan_from_proto};
use trunkline_client::{proto, Retry};
use trunkline_core::{
    inbound::{
        validate_aor, validate_number, Destination, Edge, Triggers, MAX_RING_TIMEOUT_MS,
        MIN_RING_TIMEOUT_MS,
    },
    routing::{ModelError, SipUri},
};

use crate::{
    commands::objects,
    context::{Context, Failure},
    duration,
};

/// Ring time of a `--continuity` target given without `/RING`.
pub const DEFAULT_TARGET_RING_MS: u64 = 20_000;
/// Prefix of a voicemail target on the command line and in output.
const VOICEMAIL_PREFIX: &str = "voicemail:";

/// The reason of a model error without its field name.
fn reason(error: &ModelError) -> &str {
    match error {
        ModelError::InvalidField { reason, .. } => reason,
    }
}

/// The command-line flag that sets a model field; `key` names the object's own argument
/// (`NUMBER`, `AOR`).
fn flag_for<'a>(field: &str, key: &'a str) -> &'a str {
    match field {
        "number" | "aor" => key,
        "tenant" => "--tenant",
        "device" => "--device",
        "continuity.triggers.no_answer_ms" => "--no-answer",
        "continuity.triggers.failure_codes" => "--failure-codes",
        _ => "--continuity",
    }
}

fn model_failure(key: &str) -> impl Fn(ModelError) -> Failure + '_ {
    move |error| objects::usage(flag_for(error.field(), key), reason(&error))
}

/// Checks a number given as an argument (`NUMBER`, `DID`): E.164 with '+'.
pub fn check_number(what: &str, number: &str) -> Result<(), Failure> {
    validate_number("number", number).map_err(|error| objects::usage(what, reason(&error)))
}

/// Checks an address of record given as an argument or a flag: `sip:user@domain`.
pub fn check_aor(what: &str, aor: &str) -> Result<(), Failure> {
    validate_aor("aor", aor).map_err(|error| objects::usage(what, reason(&error)))
}

/// The core's default triggers as on the wire, for a plan whose triggers change for the first
/// time (unset triggers mean these on the node).
pub fn default_triggers() -> proto::Triggers {
    triggers_to_proto(&Triggers::default())
}

/// A conversion the node would refuse, as a usage error naming the flag.
fn wire_failure(key: &str) -> impl Fn(trunkline_core::Error) -> Failure + '_ {
    move |error| match error {
        trunkline_core::Error::InvalidField { field, reason } => {
            objects::usage(flag_for(&field, key), reason)
        }
        other => Failure::Usage(other.to_string()),
    }
}

/// Checks a DID as the node will, except what needs the rest of the configuration.
pub fn check_did(did: &proto::Did) -> Result<(), Failure> {
    did_from_proto(Some(did.clone()))
        .map(drop)
        .map_err(wire_failure("NUMBER"))
}

/// Checks a device as the node will, except what needs the rest of the configuration.
pub fn check_device(device: &proto::Device) -> Result<(), Failure> {
    device_from_proto(Some(device.clone()))
        .map(drop)
        .map_err(wire_failure("AOR"))
}

/// Checks a tenant's default plan (absent: none).
pub fn check_plan(plan: Option<&proto::ContinuityPlan>) -> Result<(), Failure> {
    match plan_from_proto(plan.cloned()).map_err(wire_failure("--tenant"))? {
        Some(plan) => plan.validate().map_err(model_failure("--tenant")),
        None => Ok(()),
    }
}

/// Checks an edge as the node will: its name, its URI and its probe overrides (each on its
/// own, as for a gateway). Whether a gateway has its name only the node knows.
pub fn check_edge(edge: &proto::Edge) -> Result<(), Failure> {
    let probe = objects::check_probe_overrides(edge.probe.as_ref())?;
    Edge {
        name: edge.name.clone(),
        uri: check_edge_uri(&edge.uri)?,
        enabled: !edge.disabled,
        probe,
    }
    .validate()
    .map_err(|error| match error.field() {
        "name" => objects::usage("edge name", reason(&error)),
        // The overrides were checked above, naming their flags; nothing else is left.
        _ => Failure::Usage(error.to_string()),
    })
}

/// Checks an edge's `--uri`: where its probes go.
pub fn check_edge_uri(uri: &str) -> Result<SipUri, Failure> {
    SipUri::parse(uri).map_err(|error| objects::usage("--uri", reason(&error)))
}

/// `--continuity` as targets: `+E164`, `sip:URI` or `voicemail:MAILBOX`, each with an
/// optional `/RING` (default [`DEFAULT_TARGET_RING_MS`]), comma separated; `''` is none. The
/// ring time is after the last '/', so a SIP URI with a '/' in it must give its ring time.
pub fn parse_targets(text: &str) -> Result<Vec<proto::ContinuityTarget>, Failure> {
    objects::parse_list(text)
        .iter()
        .map(|item| parse_target(item))
        .collect()
}

fn parse_target(item: &str) -> Result<proto::ContinuityTarget, Failure> {
    use proto::continuity_target::Destination as Wire;
    let failure = |reason: &str| objects::usage("--continuity", format!("{item:?}: {reason}"));
    let (destination, ring) = match item.rsplit_once('/') {
        Some((destination, ring)) => (destination, Some(ring)),
        None => (item, None),
    };
    let ring_timeout_ms = match ring {
        Some(ring) => duration::parse_ms(ring).map_err(|error| failure(&error))?,
        None => DEFAULT_TARGET_RING_MS,
    };
    let (wire, destination) = if destination.starts_with('+') {
        (
            Wire::Number(destination.to_owned()),
            Destination::Number(destination.to_owned()),
        )
    } else if let Some(mailbox) = destination.strip_prefix(VOICEMAIL_PREFIX) {
        (
            Wire::Voicemail(mailbox.to_owned()),
            Destination::Voicemail {
                mailbox: mailbox.to_owned(),
            },
        )
    } else if destination.starts_with("sip:") || destination.starts_with("sips:") {
        (
            Wire::SipUri(destination.to_owned()),
            Destination::Sip(destination.to_owned()),
        )
    } else {
        return Err(failure(
            "is not a continuity target: use +E164, sip:URI or voicemail:MAILBOX, each \
             optionally with /RING (e.g. +14155550199/20s)",
        ));
    };
    destination
        .validate()
        .map_err(|error| failure(reason(&error)))?;
    if !(MIN_RING_TIMEOUT_MS..=MAX_RING_TIMEOUT_MS).contains(&ring_timeout_ms) {
        return Err(failure(&format!(
            "ring time must be from {} to {}",
            duration::format_ms(MIN_RING_TIMEOUT_MS),
            duration::format_ms(MAX_RING_TIMEOUT_MS)
        )));
    }
    Ok(proto::ContinuityTarget {
        destination: Some(wire),
        ring_timeout_ms,
    })
}

/// A target as `--continuity` takes it: `+14155550199/20s`, `voicemail:alice/30s`.
pub fn target_text(target: &proto::ContinuityTarget) -> String {
    format!(
        "{}/{}",
        destination_text(target),
        duration::format_ms(target.ring_timeout_ms)
    )
}

/// A target's destination without its ring time; `?` when it has none.
pub fn destination_text(target: &proto::ContinuityTarget) -> String {
    use proto::continuity_target::Destination as Wire;
    match &target.destination {
        Some(Wire::Number(number)) => number.clone(),
        Some(Wire::SipUri(uri)) => uri.clone(),
        Some(Wire::Voicemail(mailbox)) => format!("{VOICEMAIL_PREFIX}{mailbox}"),
        None => "?".to_owned(),
    }
}

/// The whole inbound configuration as the node holds it.
pub async fn list_inbound(
    context: &Context,
    consistency: proto::ReadConsistency,
) -> Result<proto::ListInboundResponse, Failure> {
    let request = proto::ListInboundRequest {
        consistency: Some(consistency),
    };
    Ok(context
        .client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.list_inbound(request).await
        })
        .await?)
}

/// The inbound configuration as of every committed write, for a read-modify-write.
pub async fn list_inbound_latest(context: &Context) -> Result<proto::ListInboundResponse, Failure> {
    list_inbound(
        context,
        proto::ReadConsistency {
            linearizable: true,
            ..Default::default()
        },
    )
    .await
}

pub fn find_did<'a>(
    inbound: &'a proto::ListInboundResponse,
    number: &str,
) -> Option<&'a proto::Did> {
    inbound.dids.iter().find(|did| did.number == number)
}

pub fn find_device<'a>(
    inbound: &'a proto::ListInboundResponse,
    aor: &str,
) -> Option<&'a proto::Device> {
    inbound.devices.iter().find(|device| device.aor == aor)
}

pub fn find_edge<'a>(
    inbound: &'a proto::ListInboundResponse,
    name: &str,
) -> Option<&'a proto::Edge> {
    inbound.edges.iter().find(|edge| edge.name == name)
}

/// The failure when a DID, device or edge a command names does not exist (exit code 3).
pub fn not_found(kind: &str, key: &str) -> Failure {
    Failure::ConditionFailed(format!(
        "{kind} {key:?} not found; `trunkctl {kind} list` shows them"
    ))
}

/// The failure for `add` when the object exists (exit code 3): the put's Create mode made
/// the node refuse it.
pub fn already_exists(kind: &str, key: &str) -> Failure {
    Failure::ConditionFailed(format!(
        "{kind} {key:?} already exists; `trunkctl {kind} update` changes it"
    ))
}

/// Writes `did` whole; `mode` says whether it may create it, replace it, or both.
pub async fn put_did(
    context: &Context,
    did: proto::Did,
    mode: proto::PutMode,
) -> Result<u64, Failure> {
    let number = did.number.clone();
    let request = proto::PutDidRequest {
        did: Some(did),
        mode: mode.into(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_did(request).await }
        })
        .await
        .map_err(or_put_refused("did", &number))?;
    Ok(response.applied_index)
}

/// Writes `device` whole; `mode` says whether it may create it, replace it, or both.
pub async fn put_device(
    context: &Context,
    device: proto::Device,
    mode: proto::PutMode,
) -> Result<u64, Failure> {
    let aor = device.aor.clone();
    let request = proto::PutDeviceRequest {
        device: Some(device),
        mode: mode.into(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_device(request).await }
        })
        .await
        .map_err(or_put_refused("device", &aor))?;
    Ok(response.applied_index)
}

/// Writes `edge` whole; `mode` says whether it may create it, replace it, or both.
pub async fn put_edge(
    context: &Context,
    edge: proto::Edge,
    mode: proto::PutMode,
) -> Result<u64, Failure> {
    let name = edge.name.clone();
    let request = proto::PutEdgeRequest {
        edge: Some(edge),
        mode: mode.into(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_edge(request).await }
        })
        .await
        .map_err(or_put_refused("edge", &name))?;
    Ok(response.applied_index)
}

/// Deletes the `kind` object (`kind_name`: did, device or edge) whose key is `key`; NOT_FOUND
/// exits 3 naming it.
pub async fn delete(
    context: &Context,
    kind: proto::ObjectKind,
    kind_name: &str,
    key: &str,
) -> Result<u64, Failure> {
    let request = proto::DeleteObjectRequest {
        kind: kind.into(),
        name: key.to_owned(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.delete_object(request).await }
        })
        .await
        .map_err(or_not_found(kind_name, key))?;
    Ok(response.applied_index)
}

/// Maps what a put's mode refused to exit code 3: ALREADY_EXISTS (a create of an object that
/// exists) and a NOT_FOUND naming the object itself (a replace of one that is gone). A
/// NOT_FOUND about something it refers to (its tenant, its device) stays as the node said it.
fn or_put_refused<'a>(
    kind: &'a str,
    key: &'a str,
) -> impl FnOnce(trunkline_client::ClientError) -> Failure + 'a {
    move |error| match error.status() {
        Some(status) if status.code() == tonic::Code::AlreadyExists => already_exists(kind, key),
        Some(status)
            if status.code() == tonic::Code::NotFound
                && status.message() == trunkline_core::Error::not_found(kind, key).to_string() =>
        {
            not_found(kind, key)
        }
        _ => Failure::from(error),
    }
}

/// Maps NOT_FOUND to exit code 3 naming the object, other failures as usual.
pub fn or_not_found<'a>(
    kind: &'a str,
    key: &'a str,
) -> impl FnOnce(trunkline_client::ClientError) -> Failure + 'a {
    move |error| match error.status() {
        Some(status) if status.code() == tonic::Code::NotFound => not_found(kind, key),
        _ => Failure::from(error),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn message(failure: Failure) -> String {
        match failure {
            Failure::Usage(message) => message,
            _ => panic!("not a usage failure"),
        }
    }

    #[test]
    fn targets_parse_with_their_ring_time_and_print_back() {
        let targets = parse_targets(
            "+14155550199/20s, voicemail:alice/30s,sip:desk@pbx.example/15s,+442071234567",
        )
        .unwrap();
        let texts: Vec<String> = targets.iter().map(target_text).collect();
        assert_eq!(
            texts,
            [
                "+14155550199/20s",
                "voicemail:alice/30s",
                "sip:desk@pbx.example/15s",
                "+442071234567/20s"
            ]
        );
        assert_eq!(
            parse_targets(&texts.join(",")).unwrap(),
            targets,
            "output pastes back"
        );
        assert!(parse_targets("").unwrap().is_empty());
    }

    #[test]
    fn bad_targets_name_the_flag_and_the_target() {
        for (text, needle) in [
            ("+1415/20s", "--continuity: \"+1415/20s\": must be E.164"),
            ("+14155550199/0s", "ring time must be from 1s to 5m"),
            ("+14155550199/soon", "is not a duration"),
            ("4155550199", "is not a continuity target"),
            (
                "voicemail:bad box",
                "--continuity: \"voicemail:bad box\": must be 1 to 64",
            ),
            ("sip:desk pbx", "must be a sip: or sips: URI"),
        ] {
            let text = message(parse_targets(text).unwrap_err());
            assert!(text.contains(needle), "{text}");
        }
    }

    #[test]
    fn model_errors_name_the_flag() {
        let did = |number: &str, continuity: Option<proto::ContinuityPlan>| proto::Did {
            number: number.into(),
            tenant: "acme".into(),
            device: String::new(),
            continuity,
        };
        assert!(message(check_did(&did("4155550100", None)).unwrap_err()).starts_with("NUMBER: "));
        let looped = proto::ContinuityPlan {
            targets: parse_targets("+14155550100").unwrap(),
            triggers: None,
        };
        assert!(
            message(check_did(&did("+14155550100", Some(looped))).unwrap_err())
                .starts_with("--continuity: continuity loop")
        );
        let busy = proto::ContinuityPlan {
            targets: Vec::new(),
            triggers: Some(proto::Triggers {
                failure_codes: vec![486],
                ..default_triggers()
            }),
        };
        assert!(
            message(check_did(&did("+14155550100", Some(busy))).unwrap_err())
                .starts_with("--failure-codes: 486 means busy")
        );
        let device = proto::Device {
            aor: "sip:Alice@Example.com".into(),
            tenant: "acme".into(),
            ..Default::default()
        };
        assert!(message(check_device(&device).unwrap_err()).starts_with("AOR: "));
    }
}
