//! The JSON shapes trunkctl prints, and their table forms. Kept apart from the protobuf types
//! so the JSON stays stable for scripts when the wire grows.

use serde::Serialize;
use trunkline_client::proto;
use trunkline_core::routing::format_unix_ms;

use crate::{duration, output};

#[derive(Serialize)]
pub struct Member {
    pub node_id: u64,
    pub role: &'static str,
    pub leader: bool,
    pub peer_addr: String,
    pub api_addr: String,
}

impl From<&proto::Member> for Member {
    fn from(member: &proto::Member) -> Self {
        let role = match proto::MemberRole::try_from(member.role) {
            Ok(proto::MemberRole::Voter) => "voter",
            Ok(proto::MemberRole::Learner) => "learner",
            _ => "unknown",
        };
        Member {
            node_id: member.node_id,
            role,
            leader: member.leader,
            peer_addr: member.peer_addr.clone(),
            api_addr: member.api_addr.clone(),
        }
    }
}

pub fn members(members: &[proto::Member]) -> Vec<Member> {
    members.iter().map(Member::from).collect()
}

pub fn members_table(members: &[Member]) -> String {
    output::columns(
        members,
        &[
            ("NODE", &|member| member.node_id.to_string()),
            ("ROLE", &|member| match member.leader {
                true => format!("{} (leader)", member.role),
                false => member.role.to_owned(),
            }),
            ("PEER ADDRESS", &|member| member.peer_addr.clone()),
            ("API ADDRESS", &|member| member.api_addr.clone()),
        ],
    )
}

#[derive(Serialize)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub version: u64,
}

impl From<&proto::Setting> for Setting {
    fn from(setting: &proto::Setting) -> Self {
        Setting {
            key: setting.key.clone(),
            value: setting.value.clone(),
            create_index: setting.create_index,
            modify_index: setting.modify_index,
            version: setting.version,
        }
    }
}

#[derive(Serialize)]
pub struct ReadState {
    pub node_id: u64,
    pub applied_index: u64,
    pub leader_id: u64,
    pub staleness_ms: u64,
}

impl From<Option<&proto::ReadState>> for ReadState {
    fn from(state: Option<&proto::ReadState>) -> Self {
        let state = state.cloned().unwrap_or_default();
        ReadState {
            node_id: state.node_id,
            applied_index: state.applied_index,
            leader_id: state.leader_id,
            staleness_ms: state.staleness_ms,
        }
    }
}

/// A list for a table cell, `-` when empty.
pub fn cell_list<T: ToString>(items: &[T], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `text`, or `-` when it is empty.
pub fn cell(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// A gateway's or an edge's probe overrides; each absent field takes the cluster's value.
#[derive(Serialize)]
pub struct ProbeOverrides {
    /// Never probed: only the circuit breaker and operators decide its health.
    pub disabled: bool,
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub down_after: Option<u32>,
    pub up_after: Option<u32>,
    /// Empty: the cluster's.
    pub alive_codes: Vec<u32>,
}

impl From<&proto::ProbeOverrides> for ProbeOverrides {
    fn from(probe: &proto::ProbeOverrides) -> Self {
        ProbeOverrides {
            disabled: probe.disabled,
            interval_ms: probe.interval_ms,
            timeout_ms: probe.timeout_ms,
            down_after: probe.down_after,
            up_after: probe.up_after,
            alive_codes: probe.alive_codes.clone(),
        }
    }
}

/// `on`/`off` for a carrier, a gateway, an edge or a device.
pub fn enabled_word(enabled: bool) -> String {
    if enabled { "enabled" } else { "disabled" }.to_owned()
}

/// One object as `FIELD VALUE` lines, from its rows.
pub fn details_table(rows: Vec<(&str, String)>) -> String {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(field, value)| vec![field.to_owned(), value])
        .collect();
    output::table(&["FIELD", "VALUE"], &rows)
}

/// A gateway's or an edge's probing: `on (cluster policy)`, or `on`/`off` and a row per
/// override.
pub fn probe_rows(probe: Option<&ProbeOverrides>) -> Vec<(&'static str, String)> {
    let Some(probe) = probe else {
        return vec![("probe", "on (cluster policy)".to_owned())];
    };
    let probing = if probe.disabled {
        "off (only the breaker and operators decide its health)"
    } else {
        "on"
    };
    let overrides = [
        ("probe interval", probe.interval_ms.map(duration::format_ms)),
        ("probe timeout", probe.timeout_ms.map(duration::format_ms)),
        ("probe down after", probe.down_after.map(|n| n.to_string())),
        ("probe up after", probe.up_after.map(|n| n.to_string())),
        (
            "probe alive codes",
            (!probe.alive_codes.is_empty()).then(|| cell_list(&probe.alive_codes, "-")),
        ),
    ];
    std::iter::once(("probe", probing.to_owned()))
        .chain(
            overrides
                .into_iter()
                .filter_map(|(field, value)| Some((field, value?))),
        )
        .collect()
}

/// The cluster's health policy, field for field as on the wire.
#[derive(Serialize)]
pub struct HealthPolicy {
    pub probe: ProbePolicy,
    pub breaker: BreakerPolicy,
    pub flapping: FlappingPolicy,
}

#[derive(Serialize)]
pub struct ProbePolicy {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub down_after: u32,
    pub up_after: u32,
    pub alive_codes: Vec<u32>,
}

#[derive(Serialize)]
pub struct BreakerPolicy {
    pub consecutive_failures_to_open: u32,
    pub window_ms: u64,
    pub min_samples: u32,
    pub failure_ratio_percent: u32,
    pub cool_down_ms: u64,
    pub probe_successes_to_close: u32,
    pub trial_after_ms: u64,
    pub trial_one_in: u32,
}

#[derive(Serialize)]
pub struct FlappingPolicy {
    pub max_transitions: u32,
    pub window_ms: u64,
}

impl From<&proto::HealthPolicy> for HealthPolicy {
    fn from(policy: &proto::HealthPolicy) -> Self {
        let probe = policy.probe.clone().unwrap_or_default();
        let breaker = policy.breaker.unwrap_or_default();
        let flapping = policy.flapping.unwrap_or_default();
        HealthPolicy {
            probe: ProbePolicy {
                interval_ms: probe.interval_ms,
                timeout_ms: probe.timeout_ms,
                down_after: probe.down_after,
                up_after: probe.up_after,
                alive_codes: probe.alive_codes,
            },
            breaker: BreakerPolicy {
                consecutive_failures_to_open: breaker.consecutive_failures_to_open,
                window_ms: breaker.window_ms,
                min_samples: breaker.min_samples,
                failure_ratio_percent: breaker.failure_ratio_percent,
                cool_down_ms: breaker.cool_down_ms,
                probe_successes_to_close: breaker.probe_successes_to_close,
                trial_after_ms: breaker.trial_after_ms,
                trial_one_in: breaker.trial_one_in,
            },
            flapping: FlappingPolicy {
                max_transitions: flapping.max_transitions,
                window_ms: flapping.window_ms,
            },
        }
    }
}

/// One setting of the health policy as `health policy set` names it (its flag without
/// `--`), its value as the flag takes it, and what it means.
pub struct PolicySetting {
    pub name: &'static str,
    pub value: String,
    pub meaning: &'static str,
}

/// Every setting of the policy, in the order `health policy show` lists them.
pub fn health_policy_settings(policy: &HealthPolicy) -> Vec<PolicySetting> {
    let setting = |name, value, meaning| PolicySetting {
        name,
        value,
        meaning,
    };
    let probe = &policy.probe;
    let breaker = &policy.breaker;
    let flapping = &policy.flapping;
    vec![
        setting(
            "interval",
            duration::format_ms(probe.interval_ms),
            "time between two OPTIONS probes of a gateway",
        ),
        setting(
            "timeout",
            duration::format_ms(probe.timeout_ms),
            "a probe without a final reply by then failed",
        ),
        setting(
            "down-after",
            probe.down_after.to_string(),
            "failed probes in a row that take an up gateway down",
        ),
        setting(
            "up-after",
            probe.up_after.to_string(),
            "alive probes in a row that bring a down gateway back",
        ),
        setting(
            "alive-codes",
            cell_list(&probe.alive_codes, "-"),
            "final replies that count as alive",
        ),
        setting(
            "breaker-failures",
            breaker.consecutive_failures_to_open.to_string(),
            "failed calls in a row (transport failure, 408, 503) that open the breaker",
        ),
        setting(
            "breaker-window",
            duration::format_ms(breaker.window_ms),
            "the window the breaker's failure ratio is counted over",
        ),
        setting(
            "breaker-min-samples",
            breaker.min_samples.to_string(),
            "fewer calls in the window never open the breaker by ratio",
        ),
        setting(
            "breaker-ratio",
            format!("{}%", breaker.failure_ratio_percent),
            "share of failed calls in the window that opens the breaker",
        ),
        setting(
            "cool-down",
            duration::format_ms(breaker.cool_down_ms),
            "how long an open breaker waits before probes may close it",
        ),
        setting(
            "breaker-probe-successes",
            breaker.probe_successes_to_close.to_string(),
            "alive probes after the cool-down that close the breaker",
        ),
        setting(
            "breaker-trial-after",
            duration::format_ms(breaker.trial_after_ms),
            "after opening, when sampled calls start trying the gateway (half-open)",
        ),
        setting(
            "breaker-trial-one-in",
            breaker.trial_one_in.to_string(),
            "one call in this many tries a breaker-held gateway; an answer closes it early (0: off)",
        ),
        setting(
            "max-transitions",
            flapping.max_transitions.to_string(),
            "health changes of one gateway per flapping window; the last holds it down",
        ),
        setting(
            "flapping-window",
            duration::format_ms(flapping.window_ms),
            "the window max-transitions is counted over",
        ),
    ]
}

pub fn health_policy_table(policy: &HealthPolicy) -> String {
    output::columns(
        &health_policy_settings(policy),
        &[
            ("SETTING", &|setting| setting.name.to_owned()),
            ("VALUE", &|setting| setting.value.clone()),
            ("MEANING", &|setting| setting.meaning.to_owned()),
        ],
    )
}

/// `up`, `down` or `unknown` for a replicated gateway state.
fn gateway_state_name(state: i32) -> &'static str {
    match proto::GatewayState::try_from(state) {
        Ok(proto::GatewayState::Up) => "up",
        Ok(proto::GatewayState::Down) => "down",
        _ => "unknown",
    }
}

/// What made a health change; absent when nothing did yet.
fn health_source_name(source: i32) -> Option<&'static str> {
    match proto::HealthSource::try_from(source) {
        Ok(proto::HealthSource::Probe) => Some("probe"),
        Ok(proto::HealthSource::Breaker) => Some("breaker"),
        Ok(proto::HealthSource::Flapping) => Some("flapping"),
        _ => None,
    }
}

/// `trunkctl health`: every gateway's and edge's health, and which probers could not be
/// asked.
#[derive(Serialize)]
pub struct HealthList {
    pub gateways: Vec<GatewayHealth>,
    pub read_state: ReadState,
    /// Probers whose live results (round trip, last result) are missing, with why.
    pub unreachable_probers: Vec<String>,
}

#[derive(Serialize)]
pub struct GatewayHealth {
    /// The gateway's or the edge's name (they share one namespace).
    pub gateway: String,
    /// Empty for an edge.
    pub carrier: String,
    /// An edge proxy (inbound), not a carrier gateway.
    pub edge: bool,
    /// `up` or `down`: replicated, the same on every node.
    pub state: &'static str,
    /// Log time (unix ms) of the change into `state`; absent if it never changed.
    pub since_ms: Option<u64>,
    pub reason: String,
    /// What made that change: probe, breaker or flapping.
    pub source: Option<&'static str>,
    /// The node that saw that change.
    pub observer_node: Option<u64>,
    pub drained: bool,
    pub disabled: bool,
    pub probing_disabled: bool,
    /// The node that probes it now; absent when none is live (or it is not probed).
    pub prober_node: Option<u64>,
    /// From the prober, live; absent when it could not be asked or has no result yet.
    pub last_round_trip_ms: Option<u64>,
    /// Unix ms of the prober's last finished probe.
    pub last_probe_ms: Option<u64>,
    /// The last probe's outcome: "200", "503", "timeout", "connection refused"...
    pub last_result: Option<String>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
}

impl From<&proto::GatewayHealth> for GatewayHealth {
    fn from(health: &proto::GatewayHealth) -> Self {
        let positive = |value: u64| (value != 0).then_some(value);
        GatewayHealth {
            gateway: health.gateway.clone(),
            carrier: health.carrier.clone(),
            edge: health.edge,
            state: gateway_state_name(health.state),
            since_ms: positive(health.since_ms),
            reason: health.reason.clone(),
            source: health_source_name(health.source),
            observer_node: positive(health.observer_node),
            drained: health.drained,
            disabled: health.disabled,
            probing_disabled: health.probing_disabled,
            prober_node: positive(health.prober_node),
            last_round_trip_ms: health.last_round_trip_ms,
            last_probe_ms: positive(health.last_probe_ms),
            last_result: (!health.last_result.is_empty()).then(|| health.last_result.clone()),
            consecutive_failures: health.consecutive_failures,
            consecutive_successes: health.consecutive_successes,
        }
    }
}

impl GatewayHealth {
    /// `up` or `down`, with the operator states that also keep calls away: `down, drained`.
    fn state_words(&self) -> String {
        let mut words = Vec::new();
        if self.state != "up" || !(self.disabled || self.drained) {
            words.push(self.state);
        }
        if self.disabled {
            words.push("disabled");
        }
        if self.drained {
            words.push("drained");
        }
        words.join(", ")
    }

    fn why(&self) -> String {
        match (self.reason.is_empty(), self.source) {
            (true, _) => "-".to_owned(),
            (false, Some(source)) => format!("{} ({source})", self.reason),
            (false, None) => self.reason.clone(),
        }
    }

    /// The CARRIER cell: `(edge)` for an edge, which has none.
    fn carrier_cell(&self) -> String {
        if self.edge {
            "(edge)".to_owned()
        } else {
            cell(&self.carrier)
        }
    }

    fn prober(&self) -> String {
        if self.probing_disabled {
            "off".to_owned()
        } else {
            self.prober_node
                .map_or("-".to_owned(), |node| format!("node {node}"))
        }
    }
}

/// The health table; `now_ms` (unix ms) makes SINCE read "3m12s ago".
pub fn health_table(list: &HealthList, now_ms: u64) -> String {
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    output::columns(
        &list.gateways,
        &[
            ("GATEWAY", &|health| health.gateway.clone()),
            ("CARRIER", &GatewayHealth::carrier_cell),
            ("STATE", &GatewayHealth::state_words),
            ("SINCE", &|health| {
                or_dash(health.since_ms.map(|since_ms| {
                    format!(
                        "{} ago",
                        duration::format_age(now_ms.saturating_sub(since_ms))
                    )
                }))
            }),
            ("WHY", &GatewayHealth::why),
            ("RTT", &|health| {
                or_dash(
                    health
                        .last_round_trip_ms
                        .map(|round_trip_ms| format!("{round_trip_ms} ms")),
                )
            }),
            ("LAST", &|health| or_dash(health.last_result.clone())),
            ("PROBER", &GatewayHealth::prober),
        ],
    )
}

/// One event of the cluster's event log, as `trunkctl events` prints it.
#[derive(Serialize)]
pub struct Event {
    /// Log index of the entry that made the event: the same on every node.
    pub index: u64,
    /// Log time, unix ms, and the same as RFC 3339 UTC.
    pub time_ms: u64,
    pub time: String,
    /// Events before this one were dropped by the node before they reached trunkctl.
    pub missed_before: bool,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A gateway went up or down.
    GatewayHealth(GatewayHealthChange),
    /// Authentication under attack: a token locked, a source refused.
    SecurityAlert { source: String, what: String },
    /// A fraud rule fired for a tenant.
    FraudAlert {
        id: u64,
        tenant: String,
        rule: String,
        action: String,
        message: String,
    },
    /// A kind this trunkctl does not know (the node is newer).
    Unknown,
}

#[derive(Serialize)]
pub struct GatewayHealthChange {
    pub gateway: String,
    /// Empty if the gateway has been removed since.
    pub carrier: String,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: String,
    pub source: Option<&'static str>,
    pub observer_node: Option<u64>,
    pub round_trip_ms: Option<u64>,
}

impl From<&proto::Event> for Event {
    fn from(event: &proto::Event) -> Self {
        let kind = match &event.kind {
            Some(proto::event::Kind::GatewayHealth(change)) => {
                EventKind::GatewayHealth(GatewayHealthChange {
                    gateway: change.gateway.clone(),
                    carrier: change.carrier.clone(),
                    from: gateway_state_name(change.from),
                    to: gateway_state_name(change.to),
                    reason: change.reason.clone(),
                    source: health_source_name(change.source),
                    observer_node: (change.observer_node != 0).then_some(change.observer_node),
                    round_trip_ms: change.round_trip_ms,
                })
            }
            Some(proto::event::Kind::SecurityAlert(alert)) => EventKind::SecurityAlert {
                source: alert.source.clone(),
                what: alert.what.clone(),
            },
            Some(proto::event::Kind::FraudAlert(alert)) => EventKind::FraudAlert {
                id: alert.id,
                tenant: alert.tenant.clone(),
                rule: alert.rule.clone(),
                action: alert.action.clone(),
                message: alert.message.clone(),
            },
            None => EventKind::Unknown,
        };
        Event {
            index: event.index,
            time_ms: event.time_ms,
            time: format_unix_ms(event.time_ms),
            missed_before: event.missed_before,
            kind,
        }
    }
}

/// `TIME #INDEX what happened`, e.g.
/// `2026-11-28T12:01:02.345Z #42 gateway gw1 (carrier acme) up -> down: 3 consecutive
/// timeouts [probe, node 1]`.
pub fn event_line(event: &Event) -> String {
    let what = match &event.kind {
        EventKind::GatewayHealth(change) => {
            let mut text = format!("gateway {}", change.gateway);
            if !change.carrier.is_empty() {
                text.push_str(&format!(" (carrier {})", change.carrier));
            }
            text.push_str(&format!(" {} -> {}", change.from, change.to));
            if !change.reason.is_empty() {
                text.push_str(&format!(": {}", change.reason));
            }
            let details: Vec<String> = [
                change.source.map(str::to_owned),
                change.observer_node.map(|node| format!("node {node}")),
                change
                    .round_trip_ms
                    .map(|round_trip_ms| format!("rtt {round_trip_ms} ms")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !details.is_empty() {
                text.push_str(&format!(" [{}]", details.join(", ")));
            }
            text
        }
        EventKind::SecurityAlert { source, what } => {
            format!("security alert from {source}: {what}")
        }
        EventKind::FraudAlert {
            id,
            tenant,
            rule,
            message,
            ..
        } => format!("fraud alert {id} for tenant {tenant}: {rule}: {message}"),
        EventKind::Unknown => {
            "an event of a kind this trunkctl does not know (a newer trunkctl shows it)".to_owned()
        }
    };
    format!("{} #{} {what}", event.time, event.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_security_alert_reads_as_one_line_and_as_json() {
        let event = Event::from(&proto::Event {
            index: 42,
            time_ms: 1_000,
            missed_before: false,
            kind: Some(proto::event::Kind::SecurityAlert(proto::SecurityAlert {
                source: "192.0.2.7".into(),
                what: "token 00ab locked".into(),
            })),
        });
        assert_eq!(
            event_line(&event),
            "1970-01-01T00:00:01Z #42 security alert from 192.0.2.7: token 00ab locked"
        );
        let json = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(json["type"], "security_alert");
        assert_eq!(json["source"], "192.0.2.7");
    }
}
