//! `trunkline.v1.TenantLimits` and `UsageLimits` to and from the core's [`LimitsConfig`], and a
//! scope's usage for `GetUsage`.

use crate::v1 as proto;
use trunkline_core::{
    usage::{LimitsConfig, MaxDurations, UsageLimits, UsageNow},
    FieldError,
};

/// Zero durations and SIP code take the defaults; checked like the core checks them.
pub fn limits_from_proto(limits: proto::TenantLimits) -> Result<LimitsConfig, FieldError> {
    let defaults = LimitsConfig::default();
    let or_default = |value: u64, default: u64| if value == 0 { default } else { value };
    let refusal_sip_code = match limits.refusal_sip_code {
        0 => defaults.refusal_sip_code,
        code => u16::try_from(code).map_err(|_| {
            FieldError::new(
                "limits.refusal_sip_code",
                format!("{code} is not 403 or 503"),
            )
        })?,
    };
    let config = LimitsConfig {
        tenant: limits
            .tenant
            .map(usage_limits_from_proto)
            .unwrap_or_default(),
        per_extension: limits
            .per_extension
            .map(usage_limits_from_proto)
            .unwrap_or_default(),
        refusal_sip_code,
        max_duration: MaxDurations {
            default_ms: or_default(limits.max_duration_ms, defaults.max_duration.default_ms),
            international_ms: or_default(
                limits.max_international_duration_ms,
                defaults.max_duration.international_ms,
            ),
            premium_ms: or_default(
                limits.max_premium_duration_ms,
                defaults.max_duration.premium_ms,
            ),
        },
    };
    config.validate()?;
    Ok(config)
}

/// `None` for a tenant with the defaults and no limit.
pub fn limits_to_proto(limits: &LimitsConfig) -> Option<proto::TenantLimits> {
    if limits == &LimitsConfig::default() {
        return None;
    }
    Some(proto::TenantLimits {
        tenant: Some(usage_limits_to_proto(&limits.tenant)),
        per_extension: Some(usage_limits_to_proto(&limits.per_extension)),
        refusal_sip_code: limits.refusal_sip_code.into(),
        max_duration_ms: limits.max_duration.default_ms,
        max_international_duration_ms: limits.max_duration.international_ms,
        max_premium_duration_ms: limits.max_duration.premium_ms,
    })
}

fn usage_limits_from_proto(limits: proto::UsageLimits) -> UsageLimits {
    UsageLimits {
        concurrent_calls: limits.concurrent_calls,
        calls_per_second: limits.calls_per_second,
        calls_per_hour: limits.calls_per_hour,
        calls_per_day: limits.calls_per_day,
        minutes_per_day: limits.minutes_per_day,
        spend_per_day_micros: limits.spend_per_day_micros,
    }
}

fn usage_limits_to_proto(limits: &UsageLimits) -> proto::UsageLimits {
    proto::UsageLimits {
        concurrent_calls: limits.concurrent_calls,
        calls_per_second: limits.calls_per_second,
        calls_per_hour: limits.calls_per_hour,
        calls_per_day: limits.calls_per_day,
        minutes_per_day: limits.minutes_per_day,
        spend_per_day_micros: limits.spend_per_day_micros,
    }
}

pub fn usage_to_proto(usage: &UsageNow) -> proto::UsageCounters {
    proto::UsageCounters {
        active_calls: usage.active_calls,
        calls_this_second: usage.calls_this_second,
        calls_this_hour: usage.calls_this_hour,
        calls_today: usage.calls_today,
        talk_ms_today: usage.talk_ms_today,
        held_ms_today: usage.held_ms_today,
        spend_micros_today: usage.spend_micros_today,
        held_micros_today: usage.held_micros_today,
    }
}
