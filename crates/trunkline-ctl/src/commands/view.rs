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
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|member| {
            vec![
                member.node_id.to_string(),
                if member.leader {
                    format!("{} (leader)", member.role)
                } else {
                    member.role.to_owned()
                },
                member.peer_addr.clone(),
                member.api_addr.clone(),
            ]
        })
        .collect();
    output::table(&["NODE", "ROLE", "PEER ADDRESS", "API ADDRESS"], &rows)
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

/// The name trunkctl uses for a routing strategy (the `--strategy` value).
pub fn strategy_name(strategy: i32) -> &'static str {
    match proto::Strategy::try_from(strategy) {
        Ok(proto::Strategy::Unspecified | proto::Strategy::LeastCost) => "least-cost",
        Ok(proto::Strategy::Priority) => "priority",
        Ok(proto::Strategy::Weighted) => "weighted",
        Err(_) => "unknown",
    }
}

#[derive(Serialize)]
pub struct DialPlan {
    pub country_code: String,
    pub home_area_code: Option<String>,
    pub international_prefix: String,
    pub national_prefix: String,
    pub emergency_numbers: Vec<String>,
    pub extension_min_digits: u32,
    pub extension_max_digits: u32,
}

#[derive(Serialize)]
pub struct Tenant {
    pub name: String,
    pub strategy: &'static str,
    /// Empty: every carrier.
    pub allowed_carriers: Vec<String>,
    pub required_capabilities: Vec<String>,
    /// Absent when the node sent none (NANP).
    pub dial_plan: Option<DialPlan>,
}

impl From<&proto::Tenant> for Tenant {
    fn from(tenant: &proto::Tenant) -> Self {
        Tenant {
            name: tenant.name.clone(),
            strategy: strategy_name(tenant.strategy),
            allowed_carriers: tenant.allowed_carriers.clone(),
            required_capabilities: tenant.required_capabilities.clone(),
            dial_plan: tenant.dial_plan.as_ref().map(|plan| DialPlan {
                country_code: plan.country_code.clone(),
                home_area_code: (!plan.home_area_code.is_empty())
                    .then(|| plan.home_area_code.clone()),
                international_prefix: plan.international_prefix.clone(),
                national_prefix: plan.national_prefix.clone(),
                emergency_numbers: plan.emergency_numbers.clone(),
                extension_min_digits: plan.extension_min_digits,
                extension_max_digits: plan.extension_max_digits,
            }),
        }
    }
}

/// A list for a table cell, `-` when empty.
fn cell_list<T: ToString>(items: &[T], empty: &str) -> String {
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
fn cell(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

pub fn tenants_table(tenants: &[Tenant]) -> String {
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|tenant| {
            let plan = tenant.dial_plan.as_ref();
            vec![
                tenant.name.clone(),
                tenant.strategy.to_owned(),
                plan.map_or("1".to_owned(), |plan| cell(&plan.country_code)),
                plan.and_then(|plan| plan.home_area_code.clone())
                    .unwrap_or_else(|| "-".to_owned()),
                cell_list(&tenant.allowed_carriers, "all"),
                cell_list(&tenant.required_capabilities, "-"),
            ]
        })
        .collect();
    output::table(
        &[
            "TENANT",
            "STRATEGY",
            "COUNTRY",
            "HOME AREA",
            "CARRIERS",
            "REQUIRES",
        ],
        &rows,
    )
}

/// One tenant as `FIELD VALUE` lines.
pub fn tenant_details(tenant: &Tenant) -> String {
    let mut rows = vec![
        vec!["name".to_owned(), tenant.name.clone()],
        vec!["strategy".to_owned(), tenant.strategy.to_owned()],
        vec![
            "allowed carriers".to_owned(),
            cell_list(&tenant.allowed_carriers, "all"),
        ],
        vec![
            "required capabilities".to_owned(),
            cell_list(&tenant.required_capabilities, "none"),
        ],
    ];
    if let Some(plan) = &tenant.dial_plan {
        rows.extend([
            vec!["country code".to_owned(), cell(&plan.country_code)],
            vec![
                "home area code".to_owned(),
                plan.home_area_code
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
            ],
            vec![
                "international prefix".to_owned(),
                cell(&plan.international_prefix),
            ],
            vec!["national prefix".to_owned(), cell(&plan.national_prefix)],
            vec![
                "emergency numbers".to_owned(),
                cell_list(&plan.emergency_numbers, "-"),
            ],
            vec![
                "extension digits".to_owned(),
                format!(
                    "{} to {}",
                    plan.extension_min_digits, plan.extension_max_digits
                ),
            ],
        ]);
    }
    output::table(&["FIELD", "VALUE"], &rows)
}

#[derive(Serialize)]
pub struct Translation {
    pub strip_digits: u32,
    pub tech_prefix: String,
    pub plus: bool,
}

#[derive(Serialize)]
pub struct Carrier {
    pub name: String,
    pub enabled: bool,
    pub capabilities: Vec<String>,
    pub translation: Translation,
    pub final_codes: Vec<u32>,
    /// Rows in the carrier's rate deck.
    pub deck_rows: u64,
}

impl Carrier {
    pub fn new(carrier: &proto::Carrier, deck_rows: u64) -> Self {
        let translation = carrier.translation.clone().unwrap_or_default();
        Carrier {
            name: carrier.name.clone(),
            enabled: !carrier.disabled,
            capabilities: carrier.capabilities.clone(),
            translation: Translation {
                strip_digits: translation.strip_digits,
                tech_prefix: translation.tech_prefix,
                plus: translation.plus,
            },
            final_codes: carrier.final_codes.clone(),
            deck_rows,
        }
    }

    /// The translation in a few characters: `strip 1, 1010#, +`.
    fn translation_summary(&self) -> String {
        let mut parts = Vec::new();
        if self.translation.strip_digits > 0 {
            parts.push(format!("strip {}", self.translation.strip_digits));
        }
        if !self.translation.tech_prefix.is_empty() {
            parts.push(format!("prefix {}", self.translation.tech_prefix));
        }
        if self.translation.plus {
            parts.push("+".to_owned());
        }
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

fn enabled_word(enabled: bool) -> String {
    if enabled { "enabled" } else { "disabled" }.to_owned()
}

pub fn carriers_table(carriers: &[Carrier]) -> String {
    let rows: Vec<Vec<String>> = carriers
        .iter()
        .map(|carrier| {
            vec![
                carrier.name.clone(),
                enabled_word(carrier.enabled),
                cell_list(&carrier.capabilities, "-"),
                carrier.translation_summary(),
                cell_list(&carrier.final_codes, "-"),
                carrier.deck_rows.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "CARRIER",
            "STATE",
            "CAPABILITIES",
            "TRANSLATION",
            "FINAL CODES",
            "DECK ROWS",
        ],
        &rows,
    )
}

pub fn carrier_details(carrier: &Carrier) -> String {
    let rows = vec![
        vec!["name".to_owned(), carrier.name.clone()],
        vec!["state".to_owned(), enabled_word(carrier.enabled)],
        vec![
            "capabilities".to_owned(),
            cell_list(&carrier.capabilities, "none"),
        ],
        vec![
            "strip digits".to_owned(),
            carrier.translation.strip_digits.to_string(),
        ],
        vec![
            "tech prefix".to_owned(),
            cell(&carrier.translation.tech_prefix),
        ],
        vec![
            "plus".to_owned(),
            if carrier.translation.plus {
                "yes"
            } else {
                "no"
            }
            .to_owned(),
        ],
        vec![
            "final codes".to_owned(),
            cell_list(&carrier.final_codes, "none"),
        ],
        vec!["deck rows".to_owned(), carrier.deck_rows.to_string()],
    ];
    output::table(&["FIELD", "VALUE"], &rows)
}

#[derive(Serialize)]
pub struct Gateway {
    pub name: String,
    pub carrier: String,
    pub uri: String,
    pub priority: u32,
    pub weight: u32,
    /// Absent: no limit.
    pub max_concurrent_calls: Option<u32>,
    pub enabled: bool,
    pub drained: bool,
    /// How its probes differ from the cluster's health policy; absent: they don't.
    pub probe: Option<ProbeOverrides>,
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

impl From<&proto::Gateway> for Gateway {
    fn from(gateway: &proto::Gateway) -> Self {
        Gateway {
            name: gateway.name.clone(),
            carrier: gateway.carrier.clone(),
            uri: gateway.uri.clone(),
            priority: gateway.priority,
            weight: gateway.weight,
            max_concurrent_calls: (gateway.max_concurrent_calls != 0)
                .then_some(gateway.max_concurrent_calls),
            enabled: !gateway.disabled,
            drained: gateway.drained,
            probe: gateway.probe.as_ref().map(ProbeOverrides::from),
        }
    }
}

impl Gateway {
    fn state(&self) -> String {
        match (self.enabled, self.drained) {
            (false, true) => "disabled, drained".to_owned(),
            (false, false) => "disabled".to_owned(),
            (true, true) => "drained".to_owned(),
            (true, false) => "enabled".to_owned(),
        }
    }

    fn max_calls(&self) -> String {
        self.max_concurrent_calls
            .map_or("no limit".to_owned(), |calls| calls.to_string())
    }
}

pub fn gateways_table(gateways: &[Gateway]) -> String {
    let rows: Vec<Vec<String>> = gateways
        .iter()
        .map(|gateway| {
            vec![
                gateway.name.clone(),
                gateway.carrier.clone(),
                gateway.uri.clone(),
                gateway.priority.to_string(),
                gateway.weight.to_string(),
                gateway.max_calls(),
                gateway.state(),
            ]
        })
        .collect();
    output::table(
        &[
            "GATEWAY",
            "CARRIER",
            "URI",
            "PRIORITY",
            "WEIGHT",
            "MAX CALLS",
            "STATE",
        ],
        &rows,
    )
}

pub fn gateway_details(gateway: &Gateway) -> String {
    let mut rows = vec![
        vec!["name".to_owned(), gateway.name.clone()],
        vec!["carrier".to_owned(), gateway.carrier.clone()],
        vec!["uri".to_owned(), gateway.uri.clone()],
        vec!["priority".to_owned(), gateway.priority.to_string()],
        vec!["weight".to_owned(), gateway.weight.to_string()],
        vec!["max calls".to_owned(), gateway.max_calls()],
        vec!["state".to_owned(), gateway.state()],
    ];
    rows.extend(probe_rows(gateway.probe.as_ref()));
    output::table(&["FIELD", "VALUE"], &rows)
}

/// A gateway's or an edge's probing: `on (cluster policy)`, or `on`/`off` and a row per
/// override.
fn probe_rows(probe: Option<&ProbeOverrides>) -> Vec<Vec<String>> {
    let Some(probe) = probe else {
        return vec![vec!["probe".to_owned(), "on (cluster policy)".to_owned()]];
    };
    let mut rows = vec![vec![
        "probe".to_owned(),
        if probe.disabled {
            "off (only the breaker and operators decide its health)"
        } else {
            "on"
        }
        .to_owned(),
    ]];
    let mut row = |field: &str, value: Option<String>| {
        if let Some(value) = value {
            rows.push(vec![field.to_owned(), value]);
        }
    };
    row("probe interval", probe.interval_ms.map(duration::format_ms));
    row("probe timeout", probe.timeout_ms.map(duration::format_ms));
    row("probe down after", probe.down_after.map(|n| n.to_string()));
    row("probe up after", probe.up_after.map(|n| n.to_string()));
    row(
        "probe alive codes",
        (!probe.alive_codes.is_empty()).then(|| cell_list(&probe.alive_codes, "-")),
    );
    rows
}

/// A declared edge proxy.
#[derive(Serialize)]
pub struct Edge {
    pub name: String,
    /// Where its probes go.
    pub uri: String,
    /// A disabled edge is not probed; its health stays as it was.
    pub enabled: bool,
    /// How its probes differ from the cluster's health policy; absent: they don't.
    pub probe: Option<ProbeOverrides>,
}

impl From<&proto::Edge> for Edge {
    fn from(edge: &proto::Edge) -> Self {
        Edge {
            name: edge.name.clone(),
            uri: edge.uri.clone(),
            enabled: !edge.disabled,
            probe: edge.probe.as_ref().map(ProbeOverrides::from),
        }
    }
}

/// `on`, `off`, or `on (overrides)` when some probe setting is its own.
fn probe_word(probe: Option<&ProbeOverrides>) -> String {
    match probe {
        None => "on",
        Some(probe) if probe.disabled => "off",
        Some(_) => "on (overrides)",
    }
    .to_owned()
}

pub fn edges_table(edges: &[Edge]) -> String {
    let rows: Vec<Vec<String>> = edges
        .iter()
        .map(|edge| {
            vec![
                edge.name.clone(),
                edge.uri.clone(),
                enabled_word(edge.enabled),
                probe_word(edge.probe.as_ref()),
            ]
        })
        .collect();
    output::table(&["EDGE", "URI", "STATE", "PROBE"], &rows)
}

pub fn edge_details(edge: &Edge) -> String {
    let mut rows = vec![
        vec!["name".to_owned(), edge.name.clone()],
        vec!["uri".to_owned(), edge.uri.clone()],
        vec!["state".to_owned(), enabled_word(edge.enabled)],
    ];
    rows.extend(probe_rows(edge.probe.as_ref()));
    output::table(&["FIELD", "VALUE"], &rows)
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
    let rows: Vec<Vec<String>> = health_policy_settings(policy)
        .into_iter()
        .map(|setting| {
            vec![
                setting.name.to_owned(),
                setting.value,
                setting.meaning.to_owned(),
            ]
        })
        .collect();
    output::table(&["SETTING", "VALUE", "MEANING"], &rows)
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
    let rows: Vec<Vec<String>> = list
        .gateways
        .iter()
        .map(|health| {
            vec![
                health.gateway.clone(),
                health.carrier_cell(),
                health.state_words(),
                health.since_ms.map_or("-".to_owned(), |since_ms| {
                    format!(
                        "{} ago",
                        duration::format_age(now_ms.saturating_sub(since_ms))
                    )
                }),
                health.why(),
                health
                    .last_round_trip_ms
                    .map_or("-".to_owned(), |round_trip_ms| {
                        format!("{round_trip_ms} ms")
                    }),
                health.last_result.clone().unwrap_or_else(|| "-".to_owned()),
                health.prober(),
            ]
        })
        .collect();
    output::table(
        &[
            "GATEWAY", "CARRIER", "STATE", "SINCE", "WHY", "RTT", "LAST", "PROBER",
        ],
        &rows,
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
        EventKind::Unknown => {
            "an event of a kind this trunkctl does not know (a newer trunkctl shows it)".to_owned()
        }
    };
    format!("{} #{} {what}", event.time, event.index)
}

/// A continuity target; `target` is how `--continuity` takes it.
#[derive(Serialize)]
pub struct ContinuityTarget {
    /// `number`, `sip` or `voicemail`.
    pub kind: &'static str,
    /// The number, the SIP URI or the mailbox.
    pub destination: String,
    pub ring_timeout_ms: u64,
    pub target: String,
}

impl From<&proto::ContinuityTarget> for ContinuityTarget {
    fn from(target: &proto::ContinuityTarget) -> Self {
        use proto::continuity_target::Destination as Wire;
        let (kind, destination) = match &target.destination {
            Some(Wire::Number(number)) => ("number", number.clone()),
            Some(Wire::SipUri(uri)) => ("sip", uri.clone()),
            Some(Wire::Voicemail(mailbox)) => ("voicemail", mailbox.clone()),
            None => ("unknown", String::new()),
        };
        ContinuityTarget {
            kind,
            destination,
            ring_timeout_ms: target.ring_timeout_ms,
            target: super::inbound::target_text(target),
        }
    }
}

/// What makes a call leave the device for the continuity targets.
#[derive(Serialize)]
pub struct Triggers {
    pub not_registered: bool,
    /// Absent: ring the default time, then stop the call.
    pub no_answer_ms: Option<u64>,
    pub busy: bool,
    pub failure_codes: Vec<u32>,
    pub server_errors: bool,
    pub unreachable: bool,
}

#[derive(Serialize)]
pub struct ContinuityPlan {
    pub targets: Vec<ContinuityTarget>,
    pub triggers: Triggers,
}

impl From<&proto::ContinuityPlan> for ContinuityPlan {
    fn from(plan: &proto::ContinuityPlan) -> Self {
        // Unset triggers are the defaults on the node.
        let triggers = plan
            .triggers
            .clone()
            .unwrap_or_else(super::inbound::default_triggers);
        ContinuityPlan {
            targets: plan.targets.iter().map(ContinuityTarget::from).collect(),
            triggers: Triggers {
                not_registered: triggers.not_registered,
                no_answer_ms: triggers.no_answer_ms,
                busy: triggers.busy,
                failure_codes: triggers.failure_codes,
                server_errors: triggers.server_errors,
                unreachable: triggers.unreachable,
            },
        }
    }
}

impl ContinuityPlan {
    /// The targets as `--continuity` takes them, `none` when there are none.
    fn targets_text(&self) -> String {
        if self.targets.is_empty() {
            "none".to_owned()
        } else {
            self.targets
                .iter()
                .map(|target| target.target.clone())
                .collect::<Vec<_>>()
                .join(",")
        }
    }
}

/// A plan as `FIELD VALUE` rows; `absent` says what applies without one.
fn continuity_rows(plan: Option<&ContinuityPlan>, absent: &str) -> Vec<Vec<String>> {
    let Some(plan) = plan else {
        return vec![vec!["continuity".to_owned(), absent.to_owned()]];
    };
    let yes_no = |on: bool| if on { "yes" } else { "no" }.to_owned();
    let triggers = &plan.triggers;
    vec![
        vec!["continuity".to_owned(), plan.targets_text()],
        vec![
            "on not registered".to_owned(),
            yes_no(triggers.not_registered),
        ],
        vec![
            "on no answer".to_owned(),
            triggers.no_answer_ms.map_or(
                "off (ring, then stop the call)".to_owned(),
                |no_answer_ms| format!("after {}", duration::format_ms(no_answer_ms)),
            ),
        ],
        vec!["on busy".to_owned(), yes_no(triggers.busy)],
        vec![
            "on failure codes".to_owned(),
            cell_list(&triggers.failure_codes, "none"),
        ],
        vec![
            "on server errors".to_owned(),
            yes_no(triggers.server_errors),
        ],
        vec!["on unreachable".to_owned(), yes_no(triggers.unreachable)],
    ]
}

/// A continuity column: the targets, or `-` when the object has no plan of its own.
fn continuity_cell(plan: Option<&ContinuityPlan>) -> String {
    plan.map_or("-".to_owned(), ContinuityPlan::targets_text)
}

#[derive(Serialize)]
pub struct Did {
    pub number: String,
    pub tenant: String,
    /// Absent: it only forwards.
    pub device: Option<String>,
    /// Absent: the device's plan applies, else the tenant's.
    pub continuity: Option<ContinuityPlan>,
}

impl From<&proto::Did> for Did {
    fn from(did: &proto::Did) -> Self {
        Did {
            number: did.number.clone(),
            tenant: did.tenant.clone(),
            device: (!did.device.is_empty()).then(|| did.device.clone()),
            continuity: did.continuity.as_ref().map(ContinuityPlan::from),
        }
    }
}

pub fn dids_table(dids: &[Did]) -> String {
    let rows: Vec<Vec<String>> = dids
        .iter()
        .map(|did| {
            vec![
                did.number.clone(),
                did.tenant.clone(),
                did.device.clone().unwrap_or_else(|| "-".to_owned()),
                continuity_cell(did.continuity.as_ref()),
            ]
        })
        .collect();
    output::table(&["DID", "TENANT", "DEVICE", "CONTINUITY"], &rows)
}

pub fn did_details(did: &Did) -> String {
    let mut rows = vec![
        vec!["number".to_owned(), did.number.clone()],
        vec!["tenant".to_owned(), did.tenant.clone()],
        vec![
            "device".to_owned(),
            did.device
                .clone()
                .unwrap_or_else(|| "none (forwards only)".to_owned()),
        ],
    ];
    rows.extend(continuity_rows(
        did.continuity.as_ref(),
        "none of its own (the device's plan applies, else the tenant's)",
    ));
    output::table(&["FIELD", "VALUE"], &rows)
}

#[derive(Serialize)]
pub struct Device {
    pub aor: String,
    pub tenant: String,
    pub enabled: bool,
    /// Absent: the tenant's plan applies.
    pub continuity: Option<ContinuityPlan>,
}

impl From<&proto::Device> for Device {
    fn from(device: &proto::Device) -> Self {
        Device {
            aor: device.aor.clone(),
            tenant: device.tenant.clone(),
            enabled: !device.disabled,
            continuity: device.continuity.as_ref().map(ContinuityPlan::from),
        }
    }
}

pub fn devices_table(devices: &[Device]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|device| {
            vec![
                device.aor.clone(),
                device.tenant.clone(),
                enabled_word(device.enabled),
                continuity_cell(device.continuity.as_ref()),
            ]
        })
        .collect();
    output::table(&["DEVICE", "TENANT", "STATE", "CONTINUITY"], &rows)
}

/// `trunkctl device show`: the device, the DIDs that ring it and its live bindings.
#[derive(Serialize)]
pub struct DeviceDetails {
    #[serde(flatten)]
    pub device: Device,
    pub dids: Vec<String>,
    pub bindings: Bindings,
}

pub fn device_details(details: &DeviceDetails) -> String {
    let device = &details.device;
    let mut rows = vec![
        vec!["aor".to_owned(), device.aor.clone()],
        vec!["tenant".to_owned(), device.tenant.clone()],
        vec!["state".to_owned(), enabled_word(device.enabled)],
        vec!["dids".to_owned(), cell_list(&details.dids, "none")],
    ];
    rows.extend(continuity_rows(
        device.continuity.as_ref(),
        "none of its own (the tenant's plan applies)",
    ));
    let mut text = output::table(&["FIELD", "VALUE"], &rows);
    if details.bindings.bindings.is_empty() {
        text.push_str("\nNot registered: no live bindings.\n");
    } else {
        text.push_str("\nLive bindings, most recently refreshed first:\n");
        text.push_str(&bindings_table(&details.bindings));
    }
    text
}

/// A device's live registrations as of the node's log time `now_ms`.
#[derive(Serialize)]
pub struct Bindings {
    pub aor: String,
    /// Log time (unix ms) the bindings were judged live at.
    pub now_ms: u64,
    pub bindings: Vec<Binding>,
    pub read_state: ReadState,
}

#[derive(Serialize)]
pub struct Binding {
    pub edge: String,
    pub contact: String,
    /// Log time, unix ms.
    pub expires_at_ms: u64,
    pub refreshed_at_ms: u64,
    pub path: Vec<String>,
    pub received: Option<String>,
}

impl Bindings {
    pub fn new(aor: &str, response: &proto::ListBindingsResponse) -> Self {
        Bindings {
            aor: aor.to_owned(),
            now_ms: response.now_ms,
            bindings: response
                .bindings
                .iter()
                .map(|binding| Binding {
                    edge: binding.edge.clone(),
                    contact: binding.contact.clone(),
                    expires_at_ms: binding.expires_at_ms,
                    refreshed_at_ms: binding.refreshed_at_ms,
                    path: binding.path.clone(),
                    received: (!binding.received.is_empty()).then(|| binding.received.clone()),
                })
                .collect(),
            read_state: response.read_state.as_ref().into(),
        }
    }
}

/// EXPIRES reads "in 3m12s" and REFRESHED "12s ago", both against the node's log time.
pub fn bindings_table(bindings: &Bindings) -> String {
    let now_ms = bindings.now_ms;
    let rows: Vec<Vec<String>> = bindings
        .bindings
        .iter()
        .map(|binding| {
            vec![
                binding.edge.clone(),
                binding.contact.clone(),
                if binding.expires_at_ms > now_ms {
                    format!(
                        "in {}",
                        duration::format_age(binding.expires_at_ms - now_ms)
                    )
                } else {
                    "expired".to_owned()
                },
                format!(
                    "{} ago",
                    duration::format_age(now_ms.saturating_sub(binding.refreshed_at_ms))
                ),
                cell_list(&binding.path, "-"),
                binding.received.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    output::table(
        &[
            "EDGE",
            "CONTACT",
            "EXPIRES",
            "REFRESHED",
            "PATH",
            "RECEIVED",
        ],
        &rows,
    )
}

/// `trunkctl continuity show`: a tenant's default plan.
#[derive(Serialize)]
pub struct TenantContinuity {
    pub tenant: String,
    /// Absent: calls that can't reach the device stop (480).
    pub plan: Option<ContinuityPlan>,
}

pub fn tenant_continuity_details(plan: &TenantContinuity) -> String {
    let mut rows = vec![vec!["tenant".to_owned(), plan.tenant.clone()]];
    rows.extend(continuity_rows(
        plan.plan.as_ref(),
        "none (calls that can't reach the device stop with 480)",
    ));
    output::table(&["FIELD", "VALUE"], &rows)
}
