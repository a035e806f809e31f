//! Health policy, probe overrides, gateway health and events to and from protobuf.

use std::collections::BTreeSet;

use crate::v1 as proto;
use trunkline_core::{
    events::{Event, EventKind},
    health::{
        BreakerPolicy, GatewayState, HealthPolicy, Liveness, ProbeOverrides, ProbePolicy,
        TransitionLimiterPolicy, TransitionSource,
    },
    FieldError,
};

fn status_codes(field: &'static str, codes: &[u32]) -> Result<BTreeSet<u16>, FieldError> {
    codes
        .iter()
        .map(|code| {
            u16::try_from(*code)
                .map_err(|_| FieldError::new(field, format!("{code} is not a SIP code")))
        })
        .collect()
}

pub fn probe_overrides_from_proto(
    probe: Option<proto::ProbeOverrides>,
) -> Result<ProbeOverrides, FieldError> {
    let Some(probe) = probe else {
        return Ok(ProbeOverrides::default());
    };
    let alive_codes = if probe.alive_codes.is_empty() {
        None
    } else {
        Some(status_codes("probe.alive_codes", &probe.alive_codes)?)
    };
    Ok(ProbeOverrides {
        disabled: probe.disabled,
        interval_ms: probe.interval_ms,
        timeout_ms: probe.timeout_ms,
        down_after: probe.down_after,
        up_after: probe.up_after,
        alive_codes,
    })
}

pub fn probe_overrides_to_proto(probe: &ProbeOverrides) -> Option<proto::ProbeOverrides> {
    (!probe.is_default()).then(|| proto::ProbeOverrides {
        disabled: probe.disabled,
        interval_ms: probe.interval_ms,
        timeout_ms: probe.timeout_ms,
        down_after: probe.down_after,
        up_after: probe.up_after,
        alive_codes: probe
            .alive_codes
            .iter()
            .flatten()
            .map(|code| u32::from(*code))
            .collect(),
    })
}

pub fn health_policy_from_proto(
    policy: Option<proto::HealthPolicy>,
) -> Result<HealthPolicy, FieldError> {
    let policy = policy.ok_or_else(|| FieldError::new("policy", "is required"))?;
    let probe = policy
        .probe
        .ok_or_else(|| FieldError::new("policy.probe", "is required"))?;
    let breaker = policy
        .breaker
        .ok_or_else(|| FieldError::new("policy.breaker", "is required"))?;
    let flapping = policy
        .flapping
        .ok_or_else(|| FieldError::new("policy.flapping", "is required"))?;
    let failure_ratio_percent = u8::try_from(breaker.failure_ratio_percent).map_err(|_| {
        FieldError::new(
            "policy.breaker.failure_ratio_percent",
            "must be from 1 to 100",
        )
    })?;
    let policy = HealthPolicy {
        probe: ProbePolicy {
            interval_ms: probe.interval_ms,
            timeout_ms: probe.timeout_ms,
            down_after: probe.down_after,
            up_after: probe.up_after,
            alive_codes: status_codes("policy.probe.alive_codes", &probe.alive_codes)?,
        },
        breaker: BreakerPolicy {
            consecutive_failures_to_open: breaker.consecutive_failures_to_open,
            window_ms: breaker.window_ms,
            min_samples: breaker.min_samples,
            failure_ratio_percent,
            cool_down_ms: breaker.cool_down_ms,
            probe_successes_to_close: breaker.probe_successes_to_close,
            trial_after_ms: breaker.trial_after_ms,
            trial_one_in: breaker.trial_one_in,
        },
        limiter: TransitionLimiterPolicy {
            max_transitions: flapping.max_transitions,
            window_ms: flapping.window_ms,
        },
    };
    policy.validate().map_err(|error| error.within("policy"))?;
    Ok(policy)
}

pub fn health_policy_to_proto(policy: &HealthPolicy) -> proto::HealthPolicy {
    proto::HealthPolicy {
        probe: Some(proto::ProbePolicy {
            interval_ms: policy.probe.interval_ms,
            timeout_ms: policy.probe.timeout_ms,
            down_after: policy.probe.down_after,
            up_after: policy.probe.up_after,
            alive_codes: policy
                .probe
                .alive_codes
                .iter()
                .map(|code| u32::from(*code))
                .collect(),
        }),
        breaker: Some(proto::BreakerPolicy {
            consecutive_failures_to_open: policy.breaker.consecutive_failures_to_open,
            window_ms: policy.breaker.window_ms,
            min_samples: policy.breaker.min_samples,
            failure_ratio_percent: u32::from(policy.breaker.failure_ratio_percent),
            cool_down_ms: policy.breaker.cool_down_ms,
            probe_successes_to_close: policy.breaker.probe_successes_to_close,
            trial_after_ms: policy.breaker.trial_after_ms,
            trial_one_in: policy.breaker.trial_one_in,
        }),
        flapping: Some(proto::FlappingPolicy {
            max_transitions: policy.limiter.max_transitions,
            window_ms: policy.limiter.window_ms,
        }),
    }
}

pub fn liveness_to_proto(liveness: Liveness) -> proto::GatewayState {
    match liveness {
        Liveness::Up => proto::GatewayState::Up,
        Liveness::Down => proto::GatewayState::Down,
    }
}

pub fn source_to_proto(source: TransitionSource) -> proto::HealthSource {
    match source {
        TransitionSource::Probe => proto::HealthSource::Probe,
        TransitionSource::Breaker => proto::HealthSource::Breaker,
        TransitionSource::Flapping => proto::HealthSource::Flapping,
    }
}

/// The replicated part of a gateway's health line.
pub fn gateway_health(
    gateway: &trunkline_core::routing::Gateway,
    state: Option<&GatewayState>,
    drained: bool,
) -> proto::GatewayHealth {
    proto::GatewayHealth {
        carrier: gateway.carrier.clone(),
        drained,
        ..health_line(&gateway.name, gateway.enabled, &gateway.probe, state)
    }
}

/// The replicated part of an edge's health line.
pub fn edge_health(
    edge: &trunkline_core::inbound::Edge,
    state: Option<&GatewayState>,
) -> proto::GatewayHealth {
    proto::GatewayHealth {
        edge: true,
        ..health_line(&edge.name, edge.enabled, &edge.probe, state)
    }
}

fn health_line(
    name: &str,
    enabled: bool,
    probe: &ProbeOverrides,
    state: Option<&GatewayState>,
) -> proto::GatewayHealth {
    let state = state.cloned().unwrap_or_default();
    proto::GatewayHealth {
        gateway: name.to_owned(),
        state: liveness_to_proto(state.state).into(),
        since_ms: state.since_ms,
        reason: state.reason,
        source: if state.changed_index == 0 {
            proto::HealthSource::Unspecified.into()
        } else {
            source_to_proto(state.source).into()
        },
        observer_node: state.observer_node,
        disabled: !enabled,
        probing_disabled: probe.disabled,
        ..proto::GatewayHealth::default()
    }
}

pub fn event_to_proto(
    event: &Event,
    carrier_of: impl Fn(&str) -> String,
    missed_before: bool,
) -> proto::Event {
    let kind = match &event.kind {
        EventKind::GatewayHealth(change) => {
            proto::event::Kind::GatewayHealth(proto::GatewayHealthChange {
                gateway: change.gateway.clone(),
                carrier: carrier_of(&change.gateway),
                from: liveness_to_proto(change.from).into(),
                to: liveness_to_proto(change.to).into(),
                reason: change.reason.clone(),
                source: source_to_proto(change.source).into(),
                observer_node: change.observer_node,
                round_trip_ms: change.round_trip_ms,
            })
        }
        EventKind::FraudAlert(alert) => {
            proto::event::Kind::FraudAlert(super::alerts::alert_to_proto(alert))
        }
        EventKind::SecurityAlert(alert) => {
            proto::event::Kind::SecurityAlert(proto::SecurityAlert {
                source: alert.source.clone(),
                what: alert.what.clone(),
            })
        }
    };
    proto::Event {
        index: event.index,
        time_ms: event.time_ms,
        missed_before,
        kind: Some(kind),
    }
}
