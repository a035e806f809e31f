//! Fraud alerts: anomaly detection on every tenant's calls, alerts, and the automatic actions
//! they may take.
//!
//! **Detection runs in the replicated state machine**, on the call records (`crate::cdr`) as
//! they are applied: every attempt of every tenant reaches the log there, whichever node routed
//! it, so each node sees the whole cluster's traffic, reaches the same verdicts at the same log
//! index, and the alert, its event and its automatic action are one atomic change. Nothing is
//! lost or doubled when a leader fails, and the learned baselines travel in snapshots. (A
//! detector on the leader would need its own state handed over at every election; one on each
//! node would see a third of the calls.) The cost is a few counter updates per record on the
//! apply path, and per tenant a fixed-size state (see [`TenantWatch`]).
//!
//! **Rules** ([`AlertRule`]) compare a sliding window's count (or spend) with a fixed threshold,
//! and, once the tenant has two weeks of history, with a multiple of its learned baseline for
//! that hour of the week (an exponentially weighted average per hour of week, integers only).
//! An alert stays open until an operator acknowledges it; a rule with an open alert for a
//! tenant does not raise another. A rule's action (block international, block all but
//! emergency) stays on the tenant until an operator clears it (`UnblockTenant`), acknowledged
//! or not. Emergency calls are never counted, and no action ever blocks them.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cdr::{Cdr, Disposition};
use crate::routing::{validate_name, DestinationClass};
use crate::usage::{LimitsConfig, MAX_COUNT_LIMIT};
use crate::FieldError;

/// Alerts kept (open ones are never dropped: at most one per tenant and rule).
pub const MAX_ALERTS: usize = 1_000;
/// Recent numbers kept per tenant for sequential-dialling detection.
const RECENT_NUMBERS: usize = 64;
/// Talk time under which an answered call is "very short".
pub const SHORT_CALL_MS: u64 = 10_000;
/// Weeks of history before baselines are used.
const BASELINE_WEEKS: u64 = 2;
const HOUR_MS: u64 = 3_600_000;
const HOURS_PER_WEEK: u64 = 168;
/// Baselines are kept ×16 (fixed point), weighted 1/4 to the newest week.
const BASELINE_SCALE: u64 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertRule {
    /// Calls abroad (international, premium and high-risk) in a burst.
    InternationalBurst,
    /// Premium-rate and high-risk calls in a burst.
    PremiumBurst,
    /// Calls in an hour of the week the tenant is normally silent in.
    UnusualHours,
    /// Many numbers of one range (all digits but the last two alike) in a short time: scanning.
    SequentialDialling,
    /// Many answered calls shorter than [`SHORT_CALL_MS`].
    ShortCalls,
    /// Spend per hour far above normal (micro-units).
    SpendRate,
}

impl AlertRule {
    pub const ALL: [AlertRule; 6] = [
        AlertRule::InternationalBurst,
        AlertRule::PremiumBurst,
        AlertRule::UnusualHours,
        AlertRule::SequentialDialling,
        AlertRule::ShortCalls,
        AlertRule::SpendRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::InternationalBurst => "international-burst",
            AlertRule::PremiumBurst => "premium-burst",
            AlertRule::UnusualHours => "unusual-hours",
            AlertRule::SequentialDialling => "sequential-dialling",
            AlertRule::ShortCalls => "short-calls",
            AlertRule::SpendRate => "spend-rate",
        }
    }

    pub fn parse(text: &str) -> Option<AlertRule> {
        AlertRule::ALL
            .into_iter()
            .find(|rule| rule.as_str() == text)
    }

    /// The rule as shipped: thresholds an ordinary business tenant stays well under, no action.
    pub fn default_config(self) -> RuleConfig {
        let (threshold, window_ms, baseline_factor) = match self {
            AlertRule::InternationalBurst => (30, 60_000, Some(10)),
            AlertRule::PremiumBurst => (5, 60_000, None),
            AlertRule::UnusualHours => (20, HOUR_MS, None),
            AlertRule::SequentialDialling => (10, 60_000, None),
            AlertRule::ShortCalls => (30, 600_000, None),
            AlertRule::SpendRate => (100_000_000, HOUR_MS, Some(10)),
        };
        RuleConfig {
            enabled: true,
            threshold,
            window_ms,
            baseline_factor,
            action: None,
        }
    }
}

impl fmt::Display for AlertRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does on its own when it fires, until an operator clears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertAction {
    /// Refuse calls abroad: international, premium and high-risk.
    BlockInternational,
    /// Refuse every call but emergency calls.
    BlockAllButEmergency,
    /// Hold the tenant to at most this many calls at once (its own limit if lower): its
    /// calls are admitted through the replicated state like a limited tenant's.
    LowerConcurrentCalls(u32),
}

impl AlertAction {
    /// The forms an action is written in, for messages.
    pub const FORMS: &'static str =
        "block-international, block-all-but-emergency, lower-concurrent-calls=N";

    /// Reads `block-international`, `block-all-but-emergency` or `lower-concurrent-calls=N`.
    pub fn parse(text: &str) -> Option<AlertAction> {
        match text {
            "block-international" => Some(AlertAction::BlockInternational),
            "block-all-but-emergency" => Some(AlertAction::BlockAllButEmergency),
            _ => text
                .strip_prefix("lower-concurrent-calls=")
                .and_then(|calls| calls.parse().ok())
                .filter(|calls| (1..=MAX_COUNT_LIMIT).contains(calls))
                .map(AlertAction::LowerConcurrentCalls),
        }
    }

    /// Whether this action refuses a call of `class`. Never an emergency call.
    pub fn blocks(self, class: DestinationClass) -> bool {
        match (self, class) {
            (_, DestinationClass::Emergency) => false,
            (AlertAction::BlockAllButEmergency, _) => true,
            (
                AlertAction::BlockInternational,
                DestinationClass::International
                | DestinationClass::Premium
                | DestinationClass::HighRisk,
            ) => true,
            (AlertAction::BlockInternational | AlertAction::LowerConcurrentCalls(_), _) => false,
        }
    }
}

impl fmt::Display for AlertAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertAction::BlockInternational => f.write_str("block-international"),
            AlertAction::BlockAllButEmergency => f.write_str("block-all-but-emergency"),
            AlertAction::LowerConcurrentCalls(calls) => {
                write!(f, "lower-concurrent-calls={calls}")
            }
        }
    }
}

/// One rule's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleConfig {
    pub enabled: bool,
    /// Fires when the window holds more than this (calls, numbers, or micro-units of spend).
    pub threshold: u64,
    pub window_ms: u64,
    /// Fires too when the window holds more than this many times the tenant's baseline for
    /// the hour of the week (once two weeks are learned); `None`: fixed threshold only.
    pub baseline_factor: Option<u32>,
    pub action: Option<AlertAction>,
}

impl RuleConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.threshold == 0 {
            return Err(FieldError::new("threshold", "must be above 0"));
        }
        if !(1_000..=7 * 24 * HOUR_MS).contains(&self.window_ms) {
            return Err(FieldError::new(
                "window_ms",
                "must be from 1000 (a second) to 604800000 (a week)",
            ));
        }
        if let Some(AlertAction::LowerConcurrentCalls(calls)) = self.action {
            if !(1..=MAX_COUNT_LIMIT).contains(&calls) {
                return Err(FieldError::new(
                    "action",
                    format!("lower-concurrent-calls must be from 1 to {MAX_COUNT_LIMIT}"),
                ));
            }
        }
        if let Some(factor) = self.baseline_factor {
            if !(2..=1_000).contains(&factor) {
                return Err(FieldError::new("baseline_factor", "must be from 2 to 1000"));
            }
        }
        Ok(())
    }
}

/// Every rule's settings: the cluster's, and the rules a tenant sets for itself (a big
/// customer's normal burst is a small one's fraud), which win for that tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertPolicy {
    pub rules: BTreeMap<AlertRule, RuleConfig>,
    pub tenants: BTreeMap<String, BTreeMap<AlertRule, RuleConfig>>,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            rules: AlertRule::ALL
                .into_iter()
                .map(|rule| (rule, rule.default_config()))
                .collect(),
            tenants: BTreeMap::new(),
        }
    }
}

impl AlertPolicy {
    /// The cluster's settings of `rule`.
    pub fn rule(&self, rule: AlertRule) -> RuleConfig {
        self.rules
            .get(&rule)
            .cloned()
            .unwrap_or_else(|| rule.default_config())
    }

    /// The settings of `rule` for `tenant`: its own if it has them, else the cluster's.
    pub fn rule_for(&self, tenant: &str, rule: AlertRule) -> RuleConfig {
        self.tenant_rule(tenant, rule)
            .cloned()
            .unwrap_or_else(|| self.rule(rule))
    }

    /// The rules as they apply to `tenant`.
    pub fn for_tenant<'a>(&'a self, tenant: &'a str) -> TenantRules<'a> {
        TenantRules {
            policy: self,
            tenant,
        }
    }

    /// The tenant's own settings of `rule`, if it has them.
    pub fn tenant_rule(&self, tenant: &str, rule: AlertRule) -> Option<&RuleConfig> {
        self.tenants.get(tenant)?.get(&rule)
    }
}

/// The rules as they apply to one tenant.
pub struct TenantRules<'a> {
    policy: &'a AlertPolicy,
    tenant: &'a str,
}

impl TenantRules<'_> {
    pub fn rule(&self, rule: AlertRule) -> RuleConfig {
        self.policy.rule_for(self.tenant, rule)
    }
}

/// An alert: a rule that fired for a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique, increasing from 1.
    pub id: u64,
    pub tenant: String,
    pub rule: AlertRule,
    pub raised_ms: u64,
    /// What the window held, and the limit it passed (the threshold, or the baseline times
    /// its factor).
    pub observed: u64,
    pub limit: u64,
    /// The action taken, if the rule has one.
    pub action: Option<AlertAction>,
    pub message: String,
    /// Who acknowledged it, and when; `None` while open.
    pub acknowledged: Option<(String, u64)>,
}

/// What changes alerts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertCommand {
    /// Sets one rule's settings: the cluster's, or with `tenant` that tenant's own. `None`
    /// resets the cluster's to the default, or drops the tenant's own (the cluster's apply).
    SetRule {
        tenant: Option<String>,
        rule: AlertRule,
        config: Option<RuleConfig>,
    },
    Acknowledge {
        id: u64,
        by: String,
    },
    /// Clears the tenant's automatic actions.
    Unblock {
        tenant: String,
    },
    /// The webhook delivered every alert up to this id (written by the node delivering).
    Delivered {
        through: u64,
    },
}

impl AlertCommand {
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            AlertCommand::SetRule { tenant, config, .. } => {
                if let Some(tenant) = tenant {
                    validate_name("tenant", tenant)?;
                }
                config.as_ref().map_or(Ok(()), RuleConfig::validate)
            }
            AlertCommand::Delivered { .. } => Ok(()),
            AlertCommand::Acknowledge { by, .. } => {
                if by.len() > 128 {
                    return Err(FieldError::new("by", "is longer than 128 bytes"));
                }
                Ok(())
            }
            AlertCommand::Unblock { tenant } => validate_name("tenant", tenant),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertResponse {
    Done,
    /// `Unblock`: the actions that were cleared.
    Cleared(Vec<AlertAction>),
}

/// A count over a sliding window, from two fixed buckets: the previous bucket weighted by how
/// much of it the window still covers, plus the current one. Within one bucket's worth of the
/// true sliding count, in integers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    bucket: u64,
    current: u64,
    previous: u64,
}

impl Window {
    fn roll(&mut self, now_ms: u64, window_ms: u64) {
        let bucket = now_ms / window_ms.max(1);
        if bucket == self.bucket {
            return;
        }
        self.previous = if bucket == self.bucket + 1 {
            self.current
        } else {
            0
        };
        self.current = 0;
        self.bucket = bucket;
    }

    fn add(&mut self, now_ms: u64, window_ms: u64, amount: u64) -> u64 {
        self.roll(now_ms, window_ms);
        self.current = self.current.saturating_add(amount);
        self.value(now_ms, window_ms)
    }

    fn value(&self, now_ms: u64, window_ms: u64) -> u64 {
        let window_ms = window_ms.max(1);
        let into = now_ms % window_ms;
        let previous_share =
            u128::from(self.previous) * u128::from(window_ms - into) / u128::from(window_ms);
        self.current
            .saturating_add(u64::try_from(previous_share).unwrap_or(u64::MAX))
    }
}

/// Per hour of the week, a learned average (×[`BASELINE_SCALE`]) of one measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Baseline {
    hours: Vec<u64>,
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline {
            hours: vec![0; HOURS_PER_WEEK as usize],
        }
    }
}

impl Baseline {
    fn learn(&mut self, hour_of_week: usize, observed: u64) {
        if let Some(slot) = self.hours.get_mut(hour_of_week) {
            let scaled = observed.saturating_mul(BASELINE_SCALE);
            *slot = (slot.saturating_mul(3).saturating_add(scaled)) / 4;
        }
    }

    /// The average for the hour, in the measure's units (rounded up).
    fn at(&self, hour_of_week: usize) -> u64 {
        self.hours
            .get(hour_of_week)
            .map_or(0, |scaled| scaled.div_ceil(BASELINE_SCALE))
    }
}

/// One tenant's detector: windows, recent numbers and baselines. Fixed size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantWatch {
    windows: BTreeMap<AlertRule, Window>,
    recent_numbers: VecDeque<(u64, String)>,
    /// The absolute hour being counted, and its counts so far.
    hour: u64,
    hour_calls: u64,
    hour_abroad: u64,
    hour_spend: u64,
    hours_learned: u64,
    calls: Baseline,
    abroad: Baseline,
    spend: Baseline,
}

fn is_abroad(class: DestinationClass) -> bool {
    matches!(
        class,
        DestinationClass::International | DestinationClass::Premium | DestinationClass::HighRisk
    )
}

/// A call that rang out to a number: an attempt (not an end, not an emergency call).
fn attempt_class(record: &Cdr) -> Option<DestinationClass> {
    let is_lookup = matches!(
        record.disposition,
        Disposition::InProgress
            | Disposition::Blocked
            | Disposition::Refused
            | Disposition::NoRoute
    );
    record
        .class
        .filter(|class| is_lookup && *class != DestinationClass::Emergency)
}

impl TenantWatch {
    fn hour_of_week(hour: u64) -> usize {
        // The unix epoch was a Thursday; any fixed origin does, it only has to be the same.
        (hour % HOURS_PER_WEEK) as usize
    }

    /// Closes the hour being counted when `now_ms` is in a later one, learning from it (and
    /// from the silent hours in between, up to a week of them).
    fn roll_hour(&mut self, now_ms: u64) {
        let hour = now_ms / HOUR_MS;
        if self.hour == 0 {
            self.hour = hour;
            return;
        }
        if hour <= self.hour {
            return;
        }
        let mut closing = self.hour;
        let mut counts = (self.hour_calls, self.hour_abroad, self.hour_spend);
        while closing < hour && closing < self.hour + HOURS_PER_WEEK {
            let at = Self::hour_of_week(closing);
            self.calls.learn(at, counts.0);
            self.abroad.learn(at, counts.1);
            self.spend.learn(at, counts.2);
            self.hours_learned = self.hours_learned.saturating_add(1);
            counts = (0, 0, 0);
            closing += 1;
        }
        self.hour = hour;
        self.hour_calls = 0;
        self.hour_abroad = 0;
        self.hour_spend = 0;
    }

    fn learned(&self) -> bool {
        self.hours_learned >= BASELINE_WEEKS * HOURS_PER_WEEK
    }

    /// Counts a record and returns the rules that fire, with what was observed and the limit.
    fn observe(
        &mut self,
        now_ms: u64,
        record: &Cdr,
        rules: &TenantRules<'_>,
    ) -> Vec<(AlertRule, u64, u64)> {
        self.roll_hour(now_ms);
        let at = Self::hour_of_week(now_ms / HOUR_MS);
        let mut fired = Vec::new();
        let learned = self.learned();
        if let Some(class) = attempt_class(record) {
            self.hour_calls = self.hour_calls.saturating_add(1);
            let abroad_baseline = if learned { self.abroad.at(at) } else { 0 };
            if is_abroad(class) {
                self.hour_abroad = self.hour_abroad.saturating_add(1);
                fired.extend(self.check(
                    rules,
                    now_ms,
                    AlertRule::InternationalBurst,
                    1,
                    abroad_baseline,
                ));
            }
            if matches!(
                class,
                DestinationClass::Premium | DestinationClass::HighRisk
            ) {
                fired.extend(self.check(rules, now_ms, AlertRule::PremiumBurst, 1, 0));
            }
            if learned && self.calls.at(at) == 0 {
                fired.extend(self.check(rules, now_ms, AlertRule::UnusualHours, 1, 0));
            }
            // This rule counts distinct numbers of a range, not calls.
            let scanning = rules.rule(AlertRule::SequentialDialling);
            if let Some(distinct) = self.scan(now_ms, &record.normalized, scanning.window_ms) {
                if scanning.enabled && distinct > scanning.threshold {
                    fired.push((AlertRule::SequentialDialling, distinct, scanning.threshold));
                }
            }
        }
        if record.disposition == Disposition::Answered {
            let talk = record
                .end_ms
                .zip(record.answer_ms)
                .map_or(0, |(end, answer)| end.saturating_sub(answer));
            if talk < SHORT_CALL_MS {
                fired.extend(self.check(rules, now_ms, AlertRule::ShortCalls, 1, 0));
            }
        }
        if record.cost_micros > 0 {
            self.hour_spend = self.hour_spend.saturating_add(record.cost_micros);
            let spend_baseline = if learned { self.spend.at(at) } else { 0 };
            fired.extend(self.check(
                rules,
                now_ms,
                AlertRule::SpendRate,
                record.cost_micros,
                spend_baseline,
            ));
        }
        fired
    }

    /// Adds `amount` to the rule's window and returns the rule, what the window holds and the
    /// limit when it holds more than the limit: the threshold, or (with a learned `baseline`
    /// per hour) the baseline scaled to the window times the rule's factor, whichever is lower.
    fn check(
        &mut self,
        rules: &TenantRules<'_>,
        now_ms: u64,
        rule: AlertRule,
        amount: u64,
        baseline: u64,
    ) -> Option<(AlertRule, u64, u64)> {
        let config = rules.rule(rule);
        if !config.enabled {
            return None;
        }
        let observed = self
            .windows
            .entry(rule)
            .or_default()
            .add(now_ms, config.window_ms, amount);
        let mut limit = config.threshold;
        if let (Some(factor), true) = (config.baseline_factor, baseline > 0) {
            let scaled = u128::from(baseline) * u128::from(config.window_ms) / u128::from(HOUR_MS);
            let learned_limit =
                u64::try_from(scaled.max(1) * u128::from(factor)).unwrap_or(u64::MAX);
            limit = limit.min(learned_limit);
        }
        (observed > limit).then_some((rule, observed, limit))
    }

    /// Remembers `number` and returns how many distinct numbers of its range (all digits but
    /// the last two) were dialled within the sequential-dialling window; `None` for numbers too
    /// short to have a range.
    fn scan(&mut self, now_ms: u64, number: &str, window_ms: u64) -> Option<u64> {
        let digits = number.trim_start_matches('+');
        if digits.len() < 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let range = &digits[..digits.len() - 2];
        let mut distinct: Vec<&str> = self
            .recent_numbers
            .iter()
            .filter(|(time, other)| {
                now_ms.saturating_sub(*time) < window_ms && other.starts_with(range)
            })
            .map(|(_, other)| other.as_str())
            .collect();
        distinct.push(digits);
        distinct.sort_unstable();
        distinct.dedup();
        let count = distinct.len() as u64;
        if self.recent_numbers.len() == RECENT_NUMBERS {
            self.recent_numbers.pop_front();
        }
        self.recent_numbers.push_back((now_ms, digits.to_owned()));
        Some(count)
    }
}

/// The replicated alert state: the policy, every tenant's detector, the alerts and the actions
/// in force.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertBook {
    policy: AlertPolicy,
    /// Shared per tenant: applying a batch copies only the detectors of its tenants.
    watches: BTreeMap<String, std::sync::Arc<TenantWatch>>,
    alerts: VecDeque<Alert>,
    /// Each tenant's actions in force, with the alert that set each.
    actions: BTreeMap<String, BTreeMap<AlertAction, u64>>,
    /// The id of the last alert raised.
    last_id: u64,
    delivered_through: u64,
}

impl AlertBook {
    /// Feeds applied call records to the detectors; returns the alerts raised (already kept).
    pub fn observe<'a>(
        &mut self,
        now_ms: u64,
        records: impl IntoIterator<Item = &'a Cdr>,
    ) -> Vec<Alert> {
        let mut raised = Vec::new();
        for record in records {
            let watch =
                std::sync::Arc::make_mut(self.watches.entry(record.tenant.clone()).or_default());
            let fired = watch.observe(now_ms, record, &self.policy.for_tenant(&record.tenant));
            for (rule, observed, limit) in fired {
                if self.open_alert(&record.tenant, rule).is_some() {
                    continue;
                }
                let action = self.policy.rule_for(&record.tenant, rule).action;
                self.last_id = self.last_id.saturating_add(1);
                let alert = Alert {
                    id: self.last_id,
                    tenant: record.tenant.clone(),
                    rule,
                    raised_ms: now_ms,
                    observed,
                    limit,
                    action,
                    message: describe(rule, observed, limit, action),
                    acknowledged: None,
                };
                if let Some(action) = action {
                    self.actions
                        .entry(record.tenant.clone())
                        .or_default()
                        .entry(action)
                        .or_insert(alert.id);
                }
                self.keep(alert.clone());
                raised.push(alert);
            }
        }
        raised
    }

    fn keep(&mut self, alert: Alert) {
        self.alerts.push_back(alert);
        while self.alerts.len() > MAX_ALERTS {
            // Drop the oldest acknowledged one; open ones stay (one per tenant and rule).
            match self
                .alerts
                .iter()
                .position(|alert| alert.acknowledged.is_some())
            {
                Some(position) => {
                    self.alerts.remove(position);
                }
                None => break,
            }
        }
    }

    fn open_alert(&self, tenant: &str, rule: AlertRule) -> Option<&Alert> {
        self.alerts.iter().rev().find(|alert| {
            alert.tenant == tenant && alert.rule == rule && alert.acknowledged.is_none()
        })
    }

    pub fn apply(
        &mut self,
        now_ms: u64,
        command: &AlertCommand,
    ) -> Result<AlertResponse, crate::Error> {
        match command {
            AlertCommand::SetRule {
                tenant: None,
                rule,
                config,
            } => {
                let config = config.clone().unwrap_or_else(|| rule.default_config());
                self.policy.rules.insert(*rule, config);
                Ok(AlertResponse::Done)
            }
            AlertCommand::SetRule {
                tenant: Some(tenant),
                rule,
                config,
            } => {
                match config {
                    Some(config) => {
                        let own = self.policy.tenants.entry(tenant.clone()).or_default();
                        own.insert(*rule, config.clone());
                    }
                    None => {
                        if let Some(own) = self.policy.tenants.get_mut(tenant) {
                            own.remove(rule);
                            if own.is_empty() {
                                self.policy.tenants.remove(tenant);
                            }
                        }
                    }
                }
                Ok(AlertResponse::Done)
            }
            AlertCommand::Acknowledge { id, by } => {
                let alert = self
                    .alerts
                    .iter_mut()
                    .find(|alert| alert.id == *id)
                    .ok_or_else(|| crate::Error::not_found("alert", id.to_string()))?;
                if alert.acknowledged.is_none() {
                    alert.acknowledged = Some((by.clone(), now_ms));
                }
                Ok(AlertResponse::Done)
            }
            AlertCommand::Unblock { tenant } => {
                let cleared = self
                    .actions
                    .remove(tenant)
                    .map(|actions| actions.into_keys().collect())
                    .unwrap_or_default();
                Ok(AlertResponse::Cleared(cleared))
            }
            AlertCommand::Delivered { through } => {
                self.delivered_through = self.delivered_through.max(*through);
                Ok(AlertResponse::Done)
            }
        }
    }

    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// Alerts kept, oldest first.
    pub fn alerts(&self) -> impl DoubleEndedIterator<Item = &Alert> {
        self.alerts.iter()
    }

    pub fn alert(&self, id: u64) -> Option<&Alert> {
        self.alerts.iter().find(|alert| alert.id == id)
    }

    /// The action in force that refuses a call of `class` for `tenant`, with the alert that
    /// set it.
    pub fn blocking(&self, tenant: &str, class: DestinationClass) -> Option<(AlertAction, u64)> {
        self.actions
            .get(tenant)?
            .iter()
            .find(|(action, _)| action.blocks(class))
            .map(|(action, alert)| (*action, *alert))
    }

    /// The tenant's usage limits with the actions in force applied: the concurrent-call limit
    /// lowered by a `LowerConcurrentCalls` action (borrowed as they are when none is).
    pub fn effective_limits<'a>(
        &self,
        tenant: &str,
        limits: &'a LimitsConfig,
    ) -> Cow<'a, LimitsConfig> {
        let lowest = self
            .actions(tenant)
            .filter_map(|(action, _)| match action {
                AlertAction::LowerConcurrentCalls(calls) => Some(calls),
                _ => None,
            })
            .min();
        match lowest {
            Some(calls) if limits.tenant.concurrent_calls.is_none_or(|own| own > calls) => {
                let mut lowered = limits.clone();
                lowered.tenant.concurrent_calls = Some(calls);
                Cow::Owned(lowered)
            }
            _ => Cow::Borrowed(limits),
        }
    }

    /// The actions in force on `tenant`.
    pub fn actions(&self, tenant: &str) -> impl Iterator<Item = (AlertAction, u64)> + '_ {
        self.actions
            .get(tenant)
            .into_iter()
            .flat_map(|actions| actions.iter().map(|(action, alert)| (*action, *alert)))
    }

    /// The webhook has delivered every alert up to this id.
    pub fn delivered_through(&self) -> u64 {
        self.delivered_through
    }

    /// Forgets a deleted tenant.
    pub fn remove_tenant(&mut self, tenant: &str) {
        self.watches.remove(tenant);
        self.actions.remove(tenant);
        self.policy.tenants.remove(tenant);
    }
}

fn describe(rule: AlertRule, observed: u64, limit: u64, action: Option<AlertAction>) -> String {
    let what = match rule {
        AlertRule::InternationalBurst => {
            format!("{observed} calls abroad in the window, above {limit}")
        }
        AlertRule::PremiumBurst => {
            format!("{observed} premium or high-risk calls in the window, above {limit}")
        }
        AlertRule::UnusualHours => format!(
            "{observed} calls in an hour of the week this tenant is normally silent in, above \
             {limit}"
        ),
        AlertRule::SequentialDialling => format!(
            "{observed} numbers of one range dialled in the window, above {limit}: number \
             scanning"
        ),
        AlertRule::ShortCalls => format!(
            "{observed} answered calls under {}s in the window, above {limit}",
            SHORT_CALL_MS / 1_000
        ),
        AlertRule::SpendRate => {
            format!("spend of {observed} micro-units in the window, above {limit}")
        }
    };
    match action {
        Some(action) => format!("{what}; {action} until an operator clears it"),
        None => what,
    }
}

#[cfg(test)]
mod tests;
