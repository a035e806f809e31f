//! Fraud alerts, alert rules and actions for the wire.

use trunkline_core::alerts::{Alert, AlertAction, AlertRule, RuleConfig};
use trunkline_core::FieldError;

use crate::v1 as proto;

pub fn alert_to_proto(alert: &Alert) -> proto::Alert {
    let (acknowledged_by, acknowledged_ms) = alert.acknowledged.clone().unwrap_or_default();
    proto::Alert {
        id: alert.id,
        tenant: alert.tenant.clone(),
        rule: alert.rule.as_str().to_owned(),
        raised_ms: alert.raised_ms,
        observed: alert.observed,
        limit: alert.limit,
        action: alert
            .action
            .map(|action| action.to_string())
            .unwrap_or_default(),
        message: alert.message.clone(),
        acknowledged_by,
        acknowledged_ms,
    }
}

pub fn rule_config_to_proto(rule: AlertRule, config: &RuleConfig) -> proto::AlertRuleConfig {
    proto::AlertRuleConfig {
        rule: rule.as_str().to_owned(),
        enabled: config.enabled,
        threshold: config.threshold,
        window_ms: config.window_ms,
        baseline_factor: config.baseline_factor.unwrap_or(0),
        action: config
            .action
            .map(|action| action.to_string())
            .unwrap_or_default(),
        tenant_own: false,
    }
}

/// The rule a request names.
pub fn alert_rule_from_text(text: &str) -> Result<AlertRule, FieldError> {
    AlertRule::parse(text).ok_or_else(|| {
        FieldError::new(
            "rule",
            format!(
                "{text:?} is not a rule; one of: {}",
                AlertRule::ALL.map(AlertRule::as_str).join(", ")
            ),
        )
    })
}

/// A rule's settings from the wire, checked as the core checks them.
pub fn rule_config_from_proto(
    config: &proto::AlertRuleConfig,
) -> Result<(AlertRule, RuleConfig), FieldError> {
    let rule = alert_rule_from_text(&config.rule)?;
    let action = if config.action.is_empty() {
        None
    } else {
        Some(AlertAction::parse(&config.action).ok_or_else(|| {
            FieldError::new(
                "action",
                format!(
                    "{:?} is not an action; one of: {}",
                    config.action,
                    AlertAction::FORMS
                ),
            )
        })?)
    };
    let core = RuleConfig {
        enabled: config.enabled,
        threshold: config.threshold,
        window_ms: config.window_ms,
        baseline_factor: (config.baseline_factor != 0).then_some(config.baseline_factor),
        action,
    };
    core.validate()?;
    Ok((rule, core))
}
