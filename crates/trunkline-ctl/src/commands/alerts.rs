//! `trunkctl alerts list|show|ack|rules|rule`, and `trunkctl tenant unblock`: the fraud alerts
//! the cluster raised, the automatic actions in force, and the rules that raise them.

use serde::Serialize;
use trunkline_api::convert;
use trunkline_client::{proto, Retry};
use trunkline_core::routing::format_unix_ms;

use crate::{
    commands::{check, config::ReadFlags, kinds},
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Alerts, oldest first, and the automatic actions in force.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// Only alerts not acknowledged yet.
        #[arg(long)]
        open: bool,
        #[command(flatten)]
        read: ReadFlags,
    },
    /// One alert in full.
    Show {
        id: u64,
        #[command(flatten)]
        read: ReadFlags,
    },
    /// Acknowledge an alert: its rule may fire again for the tenant. An automatic action it
    /// took stays until `trunkctl tenant unblock`.
    Ack { id: u64 },
    /// Every rule's settings, and where alerts are posted.
    Rules {
        /// The rules as they apply to this tenant: its own settings where it has them.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        read: ReadFlags,
    },
    /// Change one rule (the flags not given keep their values), or reset it.
    Rule {
        /// Set it for this tenant only: its own settings win over the cluster's for it
        /// (--reset drops them, so the cluster's apply again).
        #[arg(long)]
        tenant: Option<String>,
        /// international-burst, premium-burst, unusual-hours, sequential-dialling,
        /// short-calls or spend-rate.
        rule: String,
        /// Fire above this many calls (numbers of one range for sequential-dialling,
        /// micro-units for spend-rate) in the window.
        #[arg(long)]
        threshold: Option<u64>,
        #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
        window: Option<u64>,
        /// Fire too above this many times the tenant's learned baseline; 0 for none.
        #[arg(long)]
        baseline_factor: Option<u32>,
        /// block-international, block-all-but-emergency, lower-concurrent-calls=N (hold the
        /// tenant to N calls at once), or none.
        #[arg(long)]
        action: Option<String>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
        /// Back to the shipped settings.
        #[arg(long, conflicts_with_all = ["threshold", "window", "baseline_factor", "action", "disable", "enable"])]
        reset: bool,
    },
}

#[derive(Serialize)]
struct AlertView {
    id: u64,
    tenant: String,
    rule: String,
    raised: String,
    observed: u64,
    limit: u64,
    action: String,
    message: String,
    acknowledged_by: String,
    acknowledged: String,
}

impl From<&proto::Alert> for AlertView {
    fn from(alert: &proto::Alert) -> Self {
        AlertView {
            id: alert.id,
            tenant: alert.tenant.clone(),
            rule: alert.rule.clone(),
            raised: format_unix_ms(alert.raised_ms),
            observed: alert.observed,
            limit: alert.limit,
            action: alert.action.clone(),
            message: alert.message.clone(),
            acknowledged_by: alert.acknowledged_by.clone(),
            acknowledged: if alert.acknowledged_ms == 0 {
                String::new()
            } else {
                format_unix_ms(alert.acknowledged_ms)
            },
        }
    }
}

#[derive(Serialize)]
struct ActionView {
    tenant: String,
    action: String,
    alert_id: u64,
}

#[derive(Serialize)]
struct Listing {
    alerts: Vec<AlertView>,
    actions: Vec<ActionView>,
}

async fn list(
    context: &Context,
    tenant: Option<String>,
    open_only: bool,
    read: ReadFlags,
) -> Result<proto::ListAlertsResponse, Failure> {
    let request = proto::ListAlertsRequest {
        tenant: tenant.unwrap_or_default(),
        open_only,
        consistency: Some(read.into()),
    };
    Ok(context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.list_alerts(request).await },
        )
        .await?)
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::List { tenant, open, read } => {
            let answer = list(context, tenant, open, read).await?;
            let listing = Listing {
                alerts: answer.alerts.iter().map(AlertView::from).collect(),
                actions: answer
                    .actions
                    .iter()
                    .map(|action| ActionView {
                        tenant: action.tenant.clone(),
                        action: action.action.clone(),
                        alert_id: action.alert_id,
                    })
                    .collect(),
            };
            output::emit(context.format, &listing, |listing| {
                let mut text = if listing.alerts.is_empty() {
                    "No alerts.\n".to_owned()
                } else {
                    output::columns(
                        &listing.alerts,
                        &[
                            ("ID", &|a: &AlertView| a.id.to_string()),
                            ("RAISED", &|a: &AlertView| a.raised.clone()),
                            ("TENANT", &|a: &AlertView| a.tenant.clone()),
                            ("RULE", &|a: &AlertView| a.rule.clone()),
                            ("OBSERVED", &|a: &AlertView| {
                                format!("{} > {}", a.observed, a.limit)
                            }),
                            ("ACTION", &|a: &AlertView| a.action.clone()),
                            ("ACK", &|a: &AlertView| {
                                if a.acknowledged_by.is_empty() {
                                    "open".to_owned()
                                } else {
                                    a.acknowledged_by.clone()
                                }
                            }),
                        ],
                    )
                };
                for action in &listing.actions {
                    text.push_str(&format!(
                        "\nIN FORCE: {} on tenant {} (alert {}); clear it with `trunkctl tenant \
                         unblock {}`",
                        action.action, action.tenant, action.alert_id, action.tenant
                    ));
                }
                text
            })
        }
        Command::Show { id, read } => {
            let answer = list(context, None, false, read).await?;
            let alert = answer
                .alerts
                .iter()
                .find(|alert| alert.id == id)
                .ok_or_else(|| {
                    Failure::Request(format!(
                        "alert {id} not found (alerts are kept while open, and the newest \
                         1,000 once acknowledged)"
                    ))
                })?;
            output::emit(context.format, &AlertView::from(alert), |alert| {
                format!(
                    "alert {}: {} for tenant {}\nraised:   {}\nobserved: {} (limit {})\naction:   \
                     {}\nstatus:   {}\n{}",
                    alert.id,
                    alert.rule,
                    alert.tenant,
                    alert.raised,
                    alert.observed,
                    alert.limit,
                    if alert.action.is_empty() {
                        "none"
                    } else {
                        &alert.action
                    },
                    if alert.acknowledged_by.is_empty() {
                        "open".to_owned()
                    } else {
                        format!(
                            "acknowledged by {} at {}",
                            alert.acknowledged_by, alert.acknowledged
                        )
                    },
                    alert.message
                )
            })
        }
        Command::Ack { id } => {
            let request = proto::AcknowledgeAlertRequest { id };
            let answer = context
                .admin(Retry::Write, request, |mut admin, request| async move {
                    admin.acknowledge_alert(request).await
                })
                .await?;
            output::emit(context.format, &answer.applied_index, |index| {
                format!("Alert {id} acknowledged (index {index}).")
            })
        }
        Command::Rules { tenant, read } => {
            let per_tenant = tenant.is_some();
            let policy = alert_policy(context, tenant, read.into()).await?;
            #[derive(Serialize)]
            struct RuleView {
                rule: String,
                enabled: bool,
                threshold: u64,
                window: String,
                baseline_factor: u32,
                action: String,
                /// With --tenant: "tenant" where the tenant's own settings apply.
                #[serde(skip_serializing_if = "Option::is_none")]
                set_by: Option<&'static str>,
            }
            #[derive(Serialize)]
            struct PolicyView {
                rules: Vec<RuleView>,
                webhook_url: String,
                webhook_delivered_through: u64,
            }
            let view = PolicyView {
                rules: policy
                    .rules
                    .iter()
                    .map(|rule| RuleView {
                        rule: rule.rule.clone(),
                        enabled: rule.enabled,
                        threshold: rule.threshold,
                        window: duration::format_ms(rule.window_ms),
                        baseline_factor: rule.baseline_factor,
                        action: rule.action.clone(),
                        set_by: per_tenant.then_some(if rule.tenant_own {
                            "tenant"
                        } else {
                            "cluster"
                        }),
                    })
                    .collect(),
                webhook_url: policy.webhook_url.clone(),
                webhook_delivered_through: policy.webhook_delivered_through,
            };
            output::emit(context.format, &view, |view| {
                let set_by = ("SET BY", &|r: &RuleView| r.set_by.unwrap_or("-").to_owned());
                let mut columns: Vec<(&str, output::Cell<'_, RuleView>)> = vec![
                    ("RULE", &|r: &RuleView| r.rule.clone()),
                    ("ON", &|r: &RuleView| {
                        if r.enabled { "yes" } else { "no" }.to_owned()
                    }),
                    ("ABOVE", &|r: &RuleView| r.threshold.to_string()),
                    ("IN", &|r: &RuleView| r.window.clone()),
                    ("OR BASELINE x", &|r: &RuleView| {
                        if r.baseline_factor == 0 {
                            "-".to_owned()
                        } else {
                            r.baseline_factor.to_string()
                        }
                    }),
                    ("ACTION", &|r: &RuleView| {
                        if r.action.is_empty() {
                            "-".to_owned()
                        } else {
                            r.action.clone()
                        }
                    }),
                ];
                if per_tenant {
                    columns.push((set_by.0, set_by.1));
                }
                let mut text = output::columns(&view.rules, &columns);
                text.push_str(&if view.webhook_url.is_empty() {
                    "\nwebhook: none (trunkctl config set alerts/webhook_url https://host/path)"
                        .to_owned()
                } else {
                    format!(
                        "\nwebhook: {} (delivered through alert {})",
                        view.webhook_url, view.webhook_delivered_through
                    )
                });
                text
            })
        }
        Command::Rule {
            tenant,
            rule,
            threshold,
            window,
            baseline_factor,
            action,
            disable,
            enable,
            reset,
        } => {
            let mut config = if reset {
                proto::AlertRuleConfig {
                    rule: rule.clone(),
                    ..Default::default()
                }
            } else {
                let latest = crate::commands::config::latest();
                alert_policy(context, tenant.clone(), latest)
                    .await?
                    .rules
                    .into_iter()
                    .find(|config| config.rule == rule)
                    .ok_or_else(|| {
                        Failure::Usage(format!(
                            "{rule:?} is not a rule: see `trunkctl alerts rules`"
                        ))
                    })?
            };
            if let Some(threshold) = threshold {
                config.threshold = threshold;
            }
            if let Some(window) = window {
                config.window_ms = window;
            }
            if let Some(factor) = baseline_factor {
                config.baseline_factor = factor;
            }
            if let Some(action) = action {
                config.action = if action == "none" {
                    String::new()
                } else {
                    action
                };
            }
            if disable {
                config.enabled = false;
            }
            if enable {
                config.enabled = true;
            }
            if !reset {
                // Checked as the node checks it: a mistake names its flag and sends nothing.
                check::converts(
                    &config,
                    |config| convert::rule_config_from_proto(&config),
                    "RULE",
                )?;
            }
            let request = proto::SetAlertRuleRequest {
                config: Some(config),
                reset,
                tenant: tenant.clone().unwrap_or_default(),
            };
            let answer = context
                .admin(Retry::Write, request, |mut admin, request| async move {
                    admin.set_alert_rule(request).await
                })
                .await
                .map_err(kinds::or_not_found_if("tenant", tenant.as_deref()))?;
            let of = tenant.map_or(String::new(), |tenant| format!(" of tenant {tenant}"));
            output::emit(context.format, &answer.applied_index, |index| {
                format!("Rule {rule}{of} set (index {index}).")
            })
        }
    }
}

/// The alert rules, as they apply to `tenant` when one is given (a tenant that does not exist
/// exits 3).
async fn alert_policy(
    context: &Context,
    tenant: Option<String>,
    consistency: proto::ReadConsistency,
) -> Result<proto::GetAlertPolicyResponse, Failure> {
    if let Some(tenant) = &tenant {
        check::check_name("--tenant", tenant)?;
    }
    let request = proto::GetAlertPolicyRequest {
        consistency: Some(consistency),
        tenant: tenant.clone().unwrap_or_default(),
    };
    context
        .admin(
            Retry::Idempotent,
            request,
            |mut admin, request| async move { admin.get_alert_policy(request).await },
        )
        .await
        .map_err(kinds::or_not_found_if("tenant", tenant.as_deref()))
}

/// `trunkctl tenant unblock T`.
pub async fn unblock(context: &Context, tenant: String) -> Result<(), Failure> {
    let request = proto::UnblockTenantRequest {
        tenant: tenant.clone(),
    };
    let answer = context
        .admin(Retry::Write, request, |mut admin, request| async move {
            admin.unblock_tenant(request).await
        })
        .await?;
    output::emit(context.format, &answer.cleared, |cleared| {
        if cleared.is_empty() {
            format!("Tenant {tenant} had no automatic action in force.")
        } else {
            format!("Cleared on tenant {tenant}: {}.", cleared.join(", "))
        }
    })
}
