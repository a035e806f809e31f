//! `trunkctl usage ...`: a tenant's usage limits and its usage now. `limits` changes the given
//! limits (of the tenant, or with `--each-extension` of each extension on its own); `show`
//! prints the counters against them.

use serde::Serialize;
use trunkline_api::convert::limits_from_proto;
use trunkline_client::{proto, Retry};
use trunkline_core::routing::{format_micros, parse_micros};

use crate::{
    commands::{
        check,
        kinds::{self, Listing},
        view::details_table,
    },
    context::{Context, Failure},
    duration, output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// A tenant's usage now (UTC day) against its limits.
    Show(kinds::OfTenant),
    /// Change the given limits; the others keep their values. `none` removes a limit.
    Limits {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        flags: LimitFlags,
    },
}

/// A count limit, or `none`.
#[derive(Clone, Copy, Debug)]
pub enum Count {
    Limit(u32),
    None,
}

fn parse_count(text: &str) -> Result<Count, String> {
    match text.trim() {
        "none" => Ok(Count::None),
        number => number
            .parse()
            .map(Count::Limit)
            .map_err(|_| format!("{number:?} is not a number (or none)")),
    }
}

/// A money limit, or `none`.
#[derive(Clone, Copy, Debug)]
pub enum Money {
    Limit(u64),
    None,
}

fn parse_money(text: &str) -> Result<Money, String> {
    match text.trim() {
        "none" => Ok(Money::None),
        amount => parse_micros(amount).map(Money::Limit),
    }
}

#[derive(clap::Args)]
pub struct LimitFlags {
    /// Set the limits each extension has on its own, instead of the tenant's.
    #[arg(long)]
    each_extension: bool,
    #[arg(long, value_name = "N|none", value_parser = parse_count)]
    concurrent_calls: Option<Count>,
    #[arg(long, value_name = "N|none", value_parser = parse_count)]
    calls_per_second: Option<Count>,
    #[arg(long, value_name = "N|none", value_parser = parse_count)]
    calls_per_hour: Option<Count>,
    /// Calls started per UTC day.
    #[arg(long, value_name = "N|none", value_parser = parse_count)]
    calls_per_day: Option<Count>,
    #[arg(long, value_name = "N|none", value_parser = parse_count)]
    minutes_per_day: Option<Count>,
    /// Spend per UTC day in the decks' currency (12.50).
    #[arg(long, value_name = "AMOUNT|none", value_parser = parse_money)]
    spend_per_day: Option<Money>,
    /// The SIP reply to a call a limit refuses: 503 or 403.
    #[arg(long, value_name = "CODE")]
    refusal_sip_code: Option<u32>,
    /// Longest a call may last before it is released unreported (default 4h).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    max_duration: Option<u64>,
    /// Longest an international call may last (default 2h).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    max_international_duration: Option<u64>,
    /// Longest a premium or high-risk call may last (default 30m).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse_ms)]
    max_premium_duration: Option<u64>,
}

impl LimitFlags {
    fn is_empty(&self) -> bool {
        self.concurrent_calls.is_none()
            && self.calls_per_second.is_none()
            && self.calls_per_hour.is_none()
            && self.calls_per_day.is_none()
            && self.minutes_per_day.is_none()
            && self.spend_per_day.is_none()
            && self.refusal_sip_code.is_none()
            && self.max_duration.is_none()
            && self.max_international_duration.is_none()
            && self.max_premium_duration.is_none()
    }

    fn apply(&self, limits: &mut proto::TenantLimits) {
        let scope = if self.each_extension {
            limits.per_extension.get_or_insert_with(Default::default)
        } else {
            limits.tenant.get_or_insert_with(Default::default)
        };
        for (flag, limit) in [
            (self.concurrent_calls, &mut scope.concurrent_calls),
            (self.calls_per_second, &mut scope.calls_per_second),
            (self.calls_per_hour, &mut scope.calls_per_hour),
            (self.calls_per_day, &mut scope.calls_per_day),
            (self.minutes_per_day, &mut scope.minutes_per_day),
        ] {
            match flag {
                Some(Count::Limit(value)) => *limit = Some(value),
                Some(Count::None) => *limit = None,
                None => {}
            }
        }
        match self.spend_per_day {
            Some(Money::Limit(micros)) => scope.spend_per_day_micros = Some(micros),
            Some(Money::None) => scope.spend_per_day_micros = None,
            None => {}
        }
        if let Some(code) = self.refusal_sip_code {
            limits.refusal_sip_code = code;
        }
        for (flag, field) in [
            (self.max_duration, &mut limits.max_duration_ms),
            (
                self.max_international_duration,
                &mut limits.max_international_duration_ms,
            ),
            (
                self.max_premium_duration,
                &mut limits.max_premium_duration_ms,
            ),
        ] {
            if let Some(ms) = flag {
                *field = ms;
            }
        }
    }
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Show(tenant) => {
            let (tenant, read) = tenant.checked()?;
            let request = proto::GetUsageRequest {
                tenant: tenant.clone(),
                consistency: Some(read),
            };
            let response = context
                .admin(
                    Retry::Idempotent,
                    request,
                    |mut admin, request| async move { admin.get_usage(request).await },
                )
                .await
                .map_err(kinds::or_not_found("tenant", &tenant))?;
            let view = UsageView::from(response);
            output::emit(context.format, &view, render)
        }
        Command::Limits { tenant, flags } => {
            check::check_name("--tenant", &tenant)?;
            if flags.is_empty() {
                return Err(Failure::Usage(
                    "nothing to change: give at least one limit (see `trunkctl usage limits \
                     --help`)"
                        .into(),
                ));
            }
            let routing = proto::ListRoutingResponse::latest(context).await?;
            let mut item = routing
                .tenants
                .iter()
                .find(|candidate| candidate.name == tenant)
                .cloned()
                .ok_or_else(|| kinds::not_found("tenant", &tenant))?;
            let limits = item.limits.get_or_insert_with(Default::default);
            flags.apply(limits);
            check::converts(limits, limits_from_proto, "--tenant")?;
            let request = proto::PutTenantRequest {
                tenant: Some(item),
                mode: proto::PutMode::Replace.into(),
            };
            let applied_index =
                kinds::put_with(context, request, |mut admin, request| async move {
                    admin.put_tenant(request).await
                })
                .await
                .map_err(kinds::or_not_found("tenant", &tenant))?;
            kinds::print_written(
                context,
                "usage limits of tenant",
                &tenant,
                "set",
                applied_index,
            )
        }
    }
}

#[derive(Serialize)]
struct Counters {
    active_calls: u64,
    calls_this_second: u64,
    calls_this_hour: u64,
    calls_today: u64,
    talk_ms_today: u64,
    held_ms_today: u64,
    spend_micros_today: u64,
    held_micros_today: u64,
}

impl From<Option<proto::UsageCounters>> for Counters {
    fn from(counters: Option<proto::UsageCounters>) -> Self {
        let counters = counters.unwrap_or_default();
        Counters {
            active_calls: counters.active_calls,
            calls_this_second: counters.calls_this_second,
            calls_this_hour: counters.calls_this_hour,
            calls_today: counters.calls_today,
            talk_ms_today: counters.talk_ms_today,
            held_ms_today: counters.held_ms_today,
            spend_micros_today: counters.spend_micros_today,
            held_micros_today: counters.held_micros_today,
        }
    }
}

#[derive(Serialize, Default)]
struct Limits {
    concurrent_calls: Option<u32>,
    calls_per_second: Option<u32>,
    calls_per_hour: Option<u32>,
    calls_per_day: Option<u32>,
    minutes_per_day: Option<u32>,
    spend_per_day_micros: Option<u64>,
}

impl From<Option<&proto::UsageLimits>> for Limits {
    fn from(limits: Option<&proto::UsageLimits>) -> Self {
        limits.map_or_else(Limits::default, |limits| Limits {
            concurrent_calls: limits.concurrent_calls,
            calls_per_second: limits.calls_per_second,
            calls_per_hour: limits.calls_per_hour,
            calls_per_day: limits.calls_per_day,
            minutes_per_day: limits.minutes_per_day,
            spend_per_day_micros: limits.spend_per_day_micros,
        })
    }
}

#[derive(Serialize)]
struct Extension {
    extension: String,
    usage: Counters,
}

#[derive(Serialize)]
struct UsageView {
    tenant: String,
    limits: Limits,
    extension_limits: Limits,
    usage: Counters,
    extensions: Vec<Extension>,
}

impl From<proto::GetUsageResponse> for UsageView {
    fn from(response: proto::GetUsageResponse) -> Self {
        let limits = response.limits.as_ref();
        UsageView {
            tenant: response.tenant,
            limits: Limits::from(limits.and_then(|limits| limits.tenant.as_ref())),
            extension_limits: Limits::from(limits.and_then(|limits| limits.per_extension.as_ref())),
            usage: Counters::from(response.counters),
            extensions: response
                .extensions
                .into_iter()
                .map(|extension| Extension {
                    extension: extension.extension,
                    usage: Counters::from(extension.counters),
                })
                .collect(),
        }
    }
}

/// `used / limit`, or `used` when there is no limit.
fn against(used: u64, limit: Option<u64>) -> String {
    match limit {
        Some(limit) => format!("{used} / {limit}"),
        None => format!("{used} (no limit)"),
    }
}

fn rows(usage: &Counters, limits: &Limits) -> Vec<(&'static str, String)> {
    let minutes = |ms: u64| ms / 60_000;
    vec![
        (
            "calls now",
            against(usage.active_calls, limits.concurrent_calls.map(u64::from)),
        ),
        (
            "calls this second",
            against(
                usage.calls_this_second,
                limits.calls_per_second.map(u64::from),
            ),
        ),
        (
            "calls this hour",
            against(usage.calls_this_hour, limits.calls_per_hour.map(u64::from)),
        ),
        (
            "calls today",
            against(usage.calls_today, limits.calls_per_day.map(u64::from)),
        ),
        (
            "minutes today",
            format!(
                "{} talked + {} held / {}",
                minutes(usage.talk_ms_today),
                minutes(usage.held_ms_today),
                limits
                    .minutes_per_day
                    .map_or_else(|| "no limit".to_owned(), |limit| limit.to_string())
            ),
        ),
        (
            "spend today",
            format!(
                "{} spent + {} held / {}",
                format_micros(usage.spend_micros_today),
                format_micros(usage.held_micros_today),
                limits
                    .spend_per_day_micros
                    .map_or_else(|| "no limit".to_owned(), format_micros)
            ),
        ),
    ]
}

fn render(view: &UsageView) -> String {
    let mut text = format!("Usage of tenant {} (today is the UTC day)\n", view.tenant);
    text.push_str(&details_table(rows(&view.usage, &view.limits)));
    for extension in &view.extensions {
        text.push_str(&format!("\nextension {}\n", extension.extension));
        text.push_str(&details_table(rows(
            &extension.usage,
            &view.extension_limits,
        )));
    }
    text
}
