//! `trunkctl policy ...`: a tenant's calling policy, the fraud controls on which calls its users
//! may make. `show` prints every scope; `set` changes the given rules of one scope (the tenant's
//! own, a source kind's or an extension's) and leaves the rest; `clear` removes a scope.
//!
//! Each rule is `on`, `off` or `inherit` (left to the wider scope: extension, then source, then
//! tenant). Emergency calls are never blocked, whatever the rules say.

use serde::Serialize;
use trunkline_api::convert::{rules_from_proto, rules_to_proto, scope_from_text};
use trunkline_client::{proto, Retry};
use trunkline_core::policy::{PolicyScope, DEFAULT_REFUSAL_SIP_CODE};

use crate::{
    commands::{
        check::{self, Optional},
        kinds::{self, Listing},
        view::details_table,
    },
    context::{Context, Failure},
    output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every scope of a tenant's calling policy.
    Show(kinds::OfTenant),
    /// Change the given rules of one scope; the others keep their values.
    Set {
        #[command(flatten)]
        scope: ScopeFlags,
        #[command(flatten)]
        rules: RuleFlags,
    },
    /// Remove one scope's rules, so the wider scope's apply.
    Clear {
        #[command(flatten)]
        scope: ScopeFlags,
    },
}

/// Which scope: the tenant's own rules unless --source or --extension names a narrower one.
#[derive(clap::Args)]
pub struct ScopeFlags {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// The rules for calls from this source kind.
    #[arg(long, value_enum, conflicts_with = "extension")]
    source: Option<SourceFlag>,
    /// The rules for calls from this extension or device.
    #[arg(long)]
    extension: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SourceFlag {
    Phone,
    AutoAttendant,
    Voicemail,
}

impl ScopeFlags {
    /// The scope as the wire names it, checked.
    fn key(&self) -> Result<String, Failure> {
        check::check_name("--tenant", &self.tenant)?;
        let (flag, key) = match (&self.source, &self.extension) {
            (Some(source), _) => (
                "--source",
                format!(
                    "source:{}",
                    match source {
                        SourceFlag::Phone => "phone",
                        SourceFlag::AutoAttendant => "auto-attendant",
                        SourceFlag::Voicemail => "voicemail",
                    }
                ),
            ),
            (None, Some(extension)) => ("--extension", format!("extension:{extension}")),
            (None, None) => ("--tenant", "tenant".to_owned()),
        };
        scope_from_text("scope", &key).map_err(|error| check::usage(flag, error.reason()))?;
        Ok(key)
    }
}

/// `on`, `off`, or `inherit` (the wider scope decides).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
    Inherit,
}

impl Switch {
    fn apply(self, rule: &mut Option<bool>) {
        *rule = match self {
            Switch::On => Some(true),
            Switch::Off => Some(false),
            Switch::Inherit => None,
        };
    }
}

/// The rules `set` takes; each is optional and leaves the scope's value as it is when absent.
#[derive(clap::Args, Default, PartialEq)]
pub struct RuleFlags {
    /// Refuse every call but emergency calls (an extension out of service).
    #[arg(long, value_enum, value_name = "on|off|inherit")]
    disabled: Option<Switch>,
    /// Refuse calls abroad.
    #[arg(long, value_enum, value_name = "on|off|inherit")]
    block_international: Option<Switch>,
    /// Refuse national calls outside the dial plan's home area (NANP, needs a home area code).
    #[arg(long, value_enum, value_name = "on|off|inherit")]
    block_long_distance: Option<Switch>,
    /// Refuse premium-rate (900, 976) and high-risk destinations.
    #[arg(long, value_enum, value_name = "on|off|inherit")]
    block_premium: Option<Switch>,
    /// Country calling codes calls abroad may go to (44,353); '' for any country; inherit.
    #[arg(long, value_name = "CODE,...|inherit")]
    allowed_countries: Option<String>,
    /// E.164 prefixes refused whatever the destination (1900,44870); '' for none; inherit.
    #[arg(long, value_name = "PREFIX,...|inherit")]
    blocked_prefixes: Option<String>,
    /// When calls are allowed: "mon-fri 08:00-18:00, sat 09:00-13:00", any, or inherit.
    #[arg(long, value_name = "HOURS|any|inherit")]
    allowed_hours: Option<String>,
    /// The IANA time zone of --allowed-hours, given with it (America/New_York); default UTC.
    #[arg(long, value_name = "ZONE")]
    time_zone: Option<String>,
    /// The SIP reply to a blocked call (default 403), or inherit.
    #[arg(long, value_name = "CODE|inherit")]
    refusal_sip_code: Option<String>,
}

impl RuleFlags {
    /// What can be checked of the flags alone, before anything is sent.
    fn check(&self) -> Result<Option<Option<u32>>, Failure> {
        if self.time_zone.is_some() && self.allowed_hours.is_none() {
            return Err(check::usage(
                "--time-zone",
                "give --allowed-hours with it: a time zone is part of the hours it applies to",
            ));
        }
        self.refusal_sip_code
            .as_deref()
            .map(|code| match code.trim() {
                "inherit" => Ok(None),
                code => code.parse().map(Some).map_err(|_| {
                    check::usage("--refusal-sip-code", format!("{code:?} is not a SIP code"))
                }),
            })
            .transpose()
    }

    /// Sets the rules given on `rules`.
    fn apply(&self, rules: &mut proto::PolicyRules) -> Result<(), Failure> {
        for (switch, rule) in [
            (self.disabled, &mut rules.disabled),
            (self.block_international, &mut rules.block_international),
            (self.block_long_distance, &mut rules.block_long_distance),
            (self.block_premium, &mut rules.block_premium),
        ] {
            if let Some(switch) = switch {
                switch.apply(rule);
            }
        }
        for (text, list) in [
            (&self.allowed_countries, &mut rules.allowed_countries),
            (&self.blocked_prefixes, &mut rules.blocked_prefixes),
        ] {
            if let Some(text) = text {
                *list = (text.trim() != "inherit").then(|| proto::CodeList {
                    codes: check::parse_list(text),
                });
            }
        }
        if let Some(hours) = &self.allowed_hours {
            rules.allowed_hours = (hours.trim() != "inherit").then(|| hours.clone());
        }
        if self.allowed_hours.is_some() {
            // New hours come with their zone: UTC unless --time-zone says otherwise.
            rules.time_zone = self.time_zone.clone().unwrap_or_default();
        }
        if rules.allowed_hours.is_none() {
            rules.time_zone.clear();
        }
        if let Some(code) = self.check()? {
            rules.refusal_sip_code = code;
        }
        Ok(())
    }
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Show(tenant) => {
            let (tenant, read) = tenant.checked()?;
            let routing = proto::ListRoutingResponse::fetch(context, read).await?;
            let policy = find(&routing, &tenant)?;
            let view = PolicyView::of(&tenant, policy.as_ref());
            output::emit(context.format, &view, render)
        }
        Command::Set { scope, rules } => {
            let key = scope.key()?;
            if rules.is_empty() {
                return Err(Failure::Usage(
                    "nothing to change: give at least one rule (see `trunkctl policy set --help`)"
                        .into(),
                ));
            }
            rules.check()?;
            let routing = proto::ListRoutingResponse::latest(context).await?;
            let policy = find(&routing, &scope.tenant)?.unwrap_or_default();
            let mut current = scope_rules(&policy, &key).unwrap_or_default();
            rules.apply(&mut current)?;
            // Checked here too, so the flag at fault is named before anything is sent.
            check::converts(&current, rules_from_proto, "--tenant")?;
            set(context, &scope.tenant, &key, Some(current), "set").await
        }
        Command::Clear { scope } => {
            let key = scope.key()?;
            set(context, &scope.tenant, &key, None, "cleared").await
        }
    }
}

async fn set(
    context: &Context,
    tenant: &str,
    scope: &str,
    rules: Option<proto::PolicyRules>,
    action: &str,
) -> Result<(), Failure> {
    let request = proto::SetCallingPolicyRequest {
        tenant: tenant.to_owned(),
        scope: scope.to_owned(),
        rules,
    };
    let response = context
        .admin(Retry::Write, request, |mut admin, request| async move {
            admin.set_calling_policy(request).await
        })
        .await
        .map_err(|error| match error.invalid_field() {
            // A contradiction only the node sees (with the other scopes) names its flag too.
            Some((field, reason)) => check::usage(&check::flag_for(field, "--tenant"), reason),
            None => kinds::or_not_found("tenant", tenant)(error),
        })?;
    kinds::print_warnings(&response.warnings);
    kinds::print_written(
        context,
        "calling policy of tenant",
        &format!("{tenant} ({scope})"),
        action,
        response.applied_index,
    )
}

/// The tenant's policy as listed; an error naming the tenant when it does not exist.
fn find(
    routing: &proto::ListRoutingResponse,
    tenant: &str,
) -> Result<Option<proto::CallingPolicy>, Failure> {
    routing
        .tenants
        .iter()
        .find(|candidate| candidate.name == tenant)
        .map(|tenant| tenant.policy.clone())
        .ok_or_else(|| kinds::not_found("tenant", tenant))
}

fn scope_rules(policy: &proto::CallingPolicy, key: &str) -> Option<proto::PolicyRules> {
    match key.split_once(':') {
        None => policy.tenant.clone(),
        Some(("source", kind)) => policy.sources.get(kind).cloned(),
        Some((_, extension)) => policy.extensions.get(extension).cloned(),
    }
}

#[derive(Serialize)]
struct PolicyView {
    tenant: String,
    scopes: Vec<ScopeView>,
}

#[derive(Serialize)]
struct ScopeView {
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_international: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_long_distance: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_premium: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_countries: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_prefixes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_hours: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal_sip_code: Option<u32>,
}

impl PolicyView {
    fn of(tenant: &str, policy: Option<&proto::CallingPolicy>) -> Self {
        let mut scopes = Vec::new();
        if let Some(policy) = policy {
            let tenant_rules = policy.tenant.clone().unwrap_or_default();
            scopes.push(ScopeView::of(PolicyScope::Tenant.key(), &tenant_rules));
            for (kind, rules) in &policy.sources {
                scopes.push(ScopeView::of(format!("source:{kind}"), rules));
            }
            for (extension, rules) in &policy.extensions {
                scopes.push(ScopeView::of(format!("extension:{extension}"), rules));
            }
        }
        PolicyView {
            tenant: tenant.to_owned(),
            scopes,
        }
    }
}

impl ScopeView {
    fn of(scope: String, rules: &proto::PolicyRules) -> Self {
        // Listed rules were checked by the node; shown as they came if not.
        let rules = rules_from_proto(rules.clone())
            .map(|rules| rules_to_proto(&rules))
            .unwrap_or_else(|_| rules.clone());
        ScopeView {
            scope,
            disabled: rules.disabled,
            block_international: rules.block_international,
            block_long_distance: rules.block_long_distance,
            block_premium: rules.block_premium,
            allowed_countries: rules.allowed_countries.map(|list| list.codes),
            blocked_prefixes: rules.blocked_prefixes.map(|list| list.codes),
            time_zone: rules
                .allowed_hours
                .as_ref()
                .map(|_| rules.time_zone.clone()),
            allowed_hours: rules.allowed_hours,
            refusal_sip_code: rules.refusal_sip_code,
        }
    }
}

fn render(view: &PolicyView) -> String {
    let mut text = format!("Calling policy of tenant {}\n", view.tenant);
    text.push_str("Emergency calls are never blocked.\n");
    if view.scopes.is_empty() {
        text.push_str("No rules: every call is allowed.\n");
        return text;
    }
    for scope in &view.scopes {
        let switch = |rule: Option<bool>| match rule {
            Some(true) => "on".to_owned(),
            Some(false) => "off".to_owned(),
            None => "inherit".to_owned(),
        };
        let list = |list: &Option<Vec<String>>, empty: &str| match list {
            Some(items) if items.is_empty() => empty.to_owned(),
            Some(items) => items.join(","),
            None => "inherit".to_owned(),
        };
        text.push('\n');
        text.push_str(&details_table(vec![
            ("scope", scope.scope.clone()),
            ("disabled", switch(scope.disabled)),
            ("block international", switch(scope.block_international)),
            ("block long distance", switch(scope.block_long_distance)),
            ("block premium", switch(scope.block_premium)),
            ("allowed countries", list(&scope.allowed_countries, "any")),
            ("blocked prefixes", list(&scope.blocked_prefixes, "none")),
            (
                "allowed hours",
                match (&scope.allowed_hours, &scope.time_zone) {
                    (Some(hours), Some(zone)) if hours != "any" => format!("{hours} ({zone})"),
                    (Some(hours), _) => hours.clone(),
                    (None, _) => "inherit".to_owned(),
                },
            ),
            (
                "refusal SIP code",
                scope.refusal_sip_code.map_or_else(
                    || format!("inherit (default {DEFAULT_REFUSAL_SIP_CODE})"),
                    |code| code.to_string(),
                ),
            ),
        ]));
    }
    text
}
