//! Tests of the inbound domain by feature: one `check` helper per feature, golden cases for
//! the rules the documentation states, property tests for the registration table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod model;
mod plan;
mod registrations;

use std::collections::BTreeSet;

use crate::routing::PutMode;

use super::{
    ContinuityPlan, ContinuityTarget, Destination, Device, Did, InboundCommand, InboundConfig,
    RegistrationUpdate, Triggers,
};

pub(super) const TENANT: &str = "acme";

/// A put of `did` that creates or replaces it.
pub(super) fn put_did(did: Did) -> InboundCommand {
    InboundCommand::PutDid {
        did,
        mode: PutMode::Upsert,
        within: None,
    }
}

/// A put of `device` that creates or replaces it.
pub(super) fn put_device(device: Device) -> InboundCommand {
    InboundCommand::PutDevice {
        device,
        mode: PutMode::Upsert,
        within: None,
    }
}

pub(super) fn number_target(number: &str) -> ContinuityTarget {
    ContinuityTarget {
        destination: Destination::Number(number.to_owned()),
        ring_timeout_ms: 20_000,
    }
}

pub(super) fn voicemail() -> ContinuityTarget {
    ContinuityTarget {
        destination: Destination::Voicemail {
            mailbox: "box1".to_owned(),
        },
        ring_timeout_ms: 60_000,
    }
}

pub(super) fn plan(targets: Vec<ContinuityTarget>) -> ContinuityPlan {
    ContinuityPlan {
        targets,
        triggers: Triggers::default(),
    }
}

pub(super) fn device(aor: &str, continuity: Option<ContinuityPlan>) -> Device {
    Device {
        aor: aor.to_owned(),
        tenant: TENANT.to_owned(),
        enabled: true,
        continuity,
    }
}

pub(super) fn did(number: &str, device: Option<&str>, continuity: Option<ContinuityPlan>) -> Did {
    Did {
        number: number.to_owned(),
        tenant: TENANT.to_owned(),
        device: device.map(str::to_owned),
        continuity,
    }
}

pub(super) fn update(
    aor: &str,
    edge: &str,
    contact: &str,
    expires_in_ms: u64,
) -> RegistrationUpdate {
    RegistrationUpdate {
        aor: aor.to_owned(),
        edge: edge.to_owned(),
        contact: contact.to_owned(),
        expires_in_ms,
        path: Vec::new(),
        received: None,
    }
}

pub(super) fn tenants(name: &str) -> bool {
    ["acme", "globex"].contains(&name)
}

/// Applies each command at its time, panicking on a refusal.
pub(super) fn config_with(commands: &[(u64, InboundCommand)]) -> InboundConfig {
    let mut config = InboundConfig::default();
    for (now_ms, command) in commands {
        config
            .apply(*now_ms, command, tenants)
            .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    }
    config
}

#[allow(dead_code)]
pub(super) fn codes(codes: &[u16]) -> BTreeSet<u16> {
    codes.iter().copied().collect()
}
