//! The JSON shapes trunkctl prints, and their table forms. Kept apart from the protobuf types
//! so the JSON stays stable for scripts when the wire grows.

use serde::Serialize;
use trunkline_client::proto;

use crate::output;

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
    let rows = vec![
        vec!["name".to_owned(), gateway.name.clone()],
        vec!["carrier".to_owned(), gateway.carrier.clone()],
        vec!["uri".to_owned(), gateway.uri.clone()],
        vec!["priority".to_owned(), gateway.priority.to_string()],
        vec!["weight".to_owned(), gateway.weight.to_string()],
        vec!["max calls".to_owned(), gateway.max_calls()],
        vec!["state".to_owned(), gateway.state()],
    ];
    output::table(&["FIELD", "VALUE"], &rows)
}
