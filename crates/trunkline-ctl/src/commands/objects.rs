//! What the tenant, carrier and gateway commands share: parsing list flags, checking an
//! object with the core's own rules before anything is sent (naming the flag at fault),
//! reading the routing configuration, and printing the outcome of a write. The gateway's
//! probe overrides and the health policy share the mapping from the core's health messages
//! to flags ([`health_failure`]).
//!
//! The checks build the core's model from the protobuf object the command is about to send,
//! with the same defaults the node applies to empty fields, so a mistake the node would
//! refuse is usually caught here first, with exit code 2 and the flag's name. The node checks
//! again: it is the authority.

use std::{collections::BTreeSet, fmt::Display};

use serde::Serialize;
use trunkline_client::{proto, Retry};
use trunkline_core::{
    health::ProbeOverrides,
    routing::{
        validate_name_field, Capability, Carrier, DialPlan, Gateway, ModelError, SipUri, Strategy,
        Tenant, Translation,
    },
};

use crate::{
    context::{Context, Failure},
    output,
};

/// A usage failure naming the flag (or argument) at fault.
pub fn usage(flag: &str, reason: impl Display) -> Failure {
    Failure::Usage(format!("{flag}: {reason}"))
}

/// A comma-separated flag value as a list; blanks around items are dropped, and an empty
/// value is an empty list (`--allowed-carriers ''` clears the list).
pub fn parse_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A capability list (`t38,tls,srtp`), checked and in the core's order.
pub fn parse_capabilities(flag: &str, text: &str) -> Result<Vec<String>, Failure> {
    let capabilities = parse_list(text)
        .iter()
        .map(|item| {
            item.parse::<Capability>().map_err(|_| {
                usage(
                    flag,
                    format!("{item:?} is not a capability: use t38, tls or srtp"),
                )
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(capabilities
        .into_iter()
        .map(|capability| capability.as_str().to_owned())
        .collect())
}

/// A SIP code list (`503,404`).
pub fn parse_codes(flag: &str, text: &str) -> Result<Vec<u32>, Failure> {
    let codes = parse_list(text)
        .iter()
        .map(|item| {
            item.parse::<u16>()
                .map(u32::from)
                .map_err(|_| usage(flag, format!("{item:?} is not a SIP code")))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(codes.into_iter().collect())
}

/// Checks a tenant, carrier or gateway name given as the `NAME` argument or a flag.
pub fn check_name(what: &str, name: &str) -> Result<(), Failure> {
    validate_name_field("name", name).map_err(|error| match error {
        trunkline_core::Error::InvalidField { reason, .. } => {
            usage(what, format!("{name:?} {reason}"))
        }
        other => usage(what, other),
    })
}

/// The reason of a model error without its field name.
fn reason(error: &ModelError) -> String {
    let message = error.to_string();
    message
        .strip_prefix(error.field())
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(&message)
        .to_owned()
}

/// The command-line flag that sets a model field.
fn flag_for(field: &str, object: &str) -> String {
    match field {
        "name" => format!("{object} name"),
        "capability" if object == "tenant" => "--require".to_owned(),
        "capability" => "--capabilities".to_owned(),
        "required_capabilities" => "--require".to_owned(),
        "max_concurrent_calls" => "--max-calls".to_owned(),
        other => {
            let last = other.rsplit('.').next().unwrap_or(other);
            format!("--{}", last.replace('_', "-"))
        }
    }
}

fn model_failure(object: &str) -> impl Fn(ModelError) -> Failure + '_ {
    move |error| usage(&flag_for(error.field(), object), reason(&error))
}

/// Checks a tenant as the node will, with the node's defaults for an empty dial plan field:
/// NANP's for country code 1 (or none), the common international ones (00, 0, 112)
/// otherwise.
pub fn check_tenant(tenant: &proto::Tenant) -> Result<(), Failure> {
    let failure = model_failure("tenant");
    let strategy = match proto::Strategy::try_from(tenant.strategy) {
        Ok(proto::Strategy::Unspecified | proto::Strategy::LeastCost) => Strategy::LeastCost,
        Ok(proto::Strategy::Priority) => Strategy::Priority,
        Ok(proto::Strategy::Weighted) => Strategy::Weighted,
        Err(_) => return Err(usage("--strategy", "unknown strategy")),
    };
    let required_capabilities = tenant
        .required_capabilities
        .iter()
        .map(|capability| capability.parse::<Capability>().map_err(&failure))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let dial_plan = match &tenant.dial_plan {
        None => DialPlan::nanp(),
        Some(plan) => dial_plan_with_defaults(plan)?,
    };
    Tenant {
        name: tenant.name.clone(),
        dial_plan,
        strategy,
        allowed_carriers: tenant.allowed_carriers.clone(),
        required_capabilities,
    }
    .validate()
    .map_err(failure)
}

fn dial_plan_with_defaults(plan: &proto::DialPlan) -> Result<DialPlan, Failure> {
    let mut result = DialPlan::defaults_for(&plan.country_code);
    if !plan.home_area_code.is_empty() {
        result.home_area_code = Some(plan.home_area_code.clone());
    }
    if !plan.international_prefix.is_empty() {
        result.international_prefix = plan.international_prefix.clone();
    }
    if !plan.national_prefix.is_empty() {
        result.national_prefix = plan.national_prefix.clone();
    }
    if !plan.emergency_numbers.is_empty() {
        result.emergency_numbers = plan.emergency_numbers.iter().cloned().collect();
    }
    let digits = |flag: &str, value: u32| {
        u8::try_from(value).map_err(|_| usage(flag, format!("{value} is too large")))
    };
    if plan.extension_min_digits != 0 {
        result.extension_min_digits = digits("--extension-min-digits", plan.extension_min_digits)?;
    }
    if plan.extension_max_digits != 0 {
        result.extension_max_digits = digits("--extension-max-digits", plan.extension_max_digits)?;
    }
    Ok(result)
}

pub fn check_carrier(carrier: &proto::Carrier) -> Result<(), Failure> {
    let failure = model_failure("carrier");
    let capabilities = carrier
        .capabilities
        .iter()
        .map(|capability| capability.parse::<Capability>().map_err(&failure))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let translation = carrier.translation.clone().unwrap_or_default();
    let strip_digits = u8::try_from(translation.strip_digits).map_err(|_| {
        usage(
            "--strip-digits",
            format!("{} is too large", translation.strip_digits),
        )
    })?;
    let final_codes = carrier
        .final_codes
        .iter()
        .map(|code| {
            u16::try_from(*code)
                .map_err(|_| usage("--final-codes", format!("{code} is not a SIP code")))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    Carrier {
        name: carrier.name.clone(),
        capabilities,
        translation: Translation {
            strip_digits,
            tech_prefix: translation.tech_prefix,
            plus: translation.plus,
        },
        final_codes,
        enabled: !carrier.disabled,
    }
    .validate()
    .map_err(failure)
}

/// The gateway flags that set each probe override, by the field name the core's messages
/// start with ("interval_ms must be from ...").
const PROBE_OVERRIDE_FLAGS: &[(&str, &str)] = &[
    ("interval_ms", "--probe-interval"),
    ("timeout_ms", "--probe-timeout"),
    ("down_after", "--down-after"),
    ("up_after", "--up-after"),
    ("alive_codes", "--alive-codes"),
    // "alive code 408 must be a final code ..."
    ("alive", "--alive-codes"),
];

/// A usage failure for a reason from the core's health checks, which begin with the field at
/// fault: names the flag that sets that field (from `flags`, field to flag), keeping the
/// core's words. `hint` is added to the end.
pub fn health_failure(reason: &str, flags: &[(&str, &str)], hint: &str) -> Failure {
    let field = reason.split_whitespace().next().unwrap_or_default();
    match flags.iter().find(|(name, _)| *name == field) {
        Some((_, flag)) => usage(flag, format!("{reason}{hint}")),
        None => Failure::Usage(format!("{reason}{hint}")),
    }
}

/// A gateway's probe overrides as the core's model (absent: none), checked with the core's
/// rules, each on its own: how they combine with the cluster's policy is settled when the
/// gateway is probed.
pub fn check_probe_overrides(
    probe: Option<&proto::ProbeOverrides>,
) -> Result<ProbeOverrides, Failure> {
    let Some(probe) = probe else {
        return Ok(ProbeOverrides::default());
    };
    let alive_codes = if probe.alive_codes.is_empty() {
        None
    } else {
        Some(
            probe
                .alive_codes
                .iter()
                .map(|code| {
                    u16::try_from(*code)
                        .map_err(|_| usage("--alive-codes", format!("{code} is not a SIP code")))
                })
                .collect::<Result<BTreeSet<_>, _>>()?,
        )
    };
    let overrides = ProbeOverrides {
        disabled: probe.disabled,
        interval_ms: probe.interval_ms,
        timeout_ms: probe.timeout_ms,
        down_after: probe.down_after,
        up_after: probe.up_after,
        alive_codes,
    };
    overrides
        .validate()
        .map_err(|reason| health_failure(&reason, PROBE_OVERRIDE_FLAGS, ""))?;
    Ok(overrides)
}

pub fn check_gateway(gateway: &proto::Gateway) -> Result<(), Failure> {
    let failure = model_failure("gateway");
    let probe = check_probe_overrides(gateway.probe.as_ref())?;
    Gateway {
        name: gateway.name.clone(),
        carrier: gateway.carrier.clone(),
        uri: SipUri::parse(&gateway.uri).map_err(&failure)?,
        priority: gateway.priority,
        weight: gateway.weight,
        max_concurrent_calls: (gateway.max_concurrent_calls != 0)
            .then_some(gateway.max_concurrent_calls),
        enabled: !gateway.disabled,
        probe,
    }
    .validate()
    .map_err(failure)
}

/// The whole routing configuration as the node holds it.
pub async fn list_routing(
    context: &Context,
    consistency: proto::ReadConsistency,
) -> Result<proto::ListRoutingResponse, Failure> {
    let request = proto::ListRoutingRequest {
        consistency: Some(consistency),
    };
    Ok(context
        .client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.list_routing(request).await
        })
        .await?)
}

/// The configuration as of every committed write, for a read-modify-write.
pub async fn list_routing_latest(context: &Context) -> Result<proto::ListRoutingResponse, Failure> {
    list_routing(
        context,
        proto::ReadConsistency {
            linearizable: true,
            ..Default::default()
        },
    )
    .await
}

/// The failure when the object a command names does not exist (exit code 3).
pub fn not_found(kind: &str, name: &str) -> Failure {
    Failure::ConditionFailed(format!(
        "{kind} {name:?} not found; `trunkctl {kind} list` shows them"
    ))
}

/// The outcome of a write, as printed.
#[derive(Serialize)]
struct Written<'a> {
    kind: &'a str,
    name: &'a str,
    /// What happened, in a word: created, updated, removed, drained...
    action: &'a str,
    applied_index: u64,
}

/// Prints `kind "name" action (log index N)`, or the JSON form.
pub fn print_written(
    context: &Context,
    kind: &str,
    name: &str,
    action: &str,
    applied_index: u64,
) -> Result<(), Failure> {
    let written = Written {
        kind,
        name,
        action,
        applied_index,
    };
    output::emit(context.format, &written, |written| {
        format!(
            "{} {:?} {} (log index {})",
            capitalized(written.kind),
            written.name,
            written.action,
            written.applied_index
        )
    })
}

fn capitalized(word: &str) -> String {
    let mut characters = word.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

/// Removes a tenant, carrier or gateway.
pub async fn remove(
    context: &Context,
    kind: proto::ObjectKind,
    kind_name: &str,
    name: String,
) -> Result<(), Failure> {
    check_name(&format!("{kind_name} name"), &name)?;
    let request = proto::DeleteObjectRequest {
        kind: kind.into(),
        name: name.clone(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.delete_object(request).await }
        })
        .await?;
    print_written(context, kind_name, &name, "removed", response.applied_index)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn message(failure: Failure) -> String {
        match failure {
            Failure::Usage(message) => message,
            _ => panic!("not a usage failure"),
        }
    }

    #[test]
    fn lists_split_on_commas_and_empty_clears() {
        assert_eq!(parse_list(" a, b ,,c"), ["a", "b", "c"]);
        assert!(parse_list("").is_empty());
        assert_eq!(
            parse_capabilities("--require", "SRTP,tls,srtp").unwrap(),
            ["tls", "srtp"]
        );
        assert_eq!(
            message(parse_capabilities("--require", "tls,fax").unwrap_err()),
            "--require: \"fax\" is not a capability: use t38, tls or srtp"
        );
        assert_eq!(
            parse_codes("--final-codes", "503, 404").unwrap(),
            [404, 503]
        );
        assert_eq!(
            message(parse_codes("--final-codes", "5xx").unwrap_err()),
            "--final-codes: \"5xx\" is not a SIP code"
        );
    }

    #[test]
    fn model_errors_name_the_flag() {
        let carrier = proto::Carrier {
            name: "acme".into(),
            translation: Some(proto::Translation {
                strip_digits: 1,
                tech_prefix: String::new(),
                plus: true,
            }),
            ..Default::default()
        };
        assert!(message(check_carrier(&carrier).unwrap_err()).starts_with("--plus: "));
        let gateway = proto::Gateway {
            name: "gw1".into(),
            carrier: "acme".into(),
            uri: "http://x".into(),
            ..Default::default()
        };
        assert!(message(check_gateway(&gateway).unwrap_err()).starts_with("--uri: "));
        let probed = |probe: proto::ProbeOverrides| proto::Gateway {
            name: "gw1".into(),
            carrier: "acme".into(),
            uri: "sip:gw.example.net".into(),
            probe: Some(probe),
            ..Default::default()
        };
        assert!(check_gateway(&probed(proto::ProbeOverrides {
            interval_ms: Some(5_000),
            alive_codes: vec![200, 404],
            ..Default::default()
        }))
        .is_ok());
        for (probe, needle) in [
            (
                proto::ProbeOverrides {
                    interval_ms: Some(10),
                    ..Default::default()
                },
                "--probe-interval: interval_ms must be from 100",
            ),
            (
                proto::ProbeOverrides {
                    interval_ms: Some(1_000),
                    timeout_ms: Some(2_000),
                    ..Default::default()
                },
                "--probe-timeout: timeout_ms must be at most interval_ms",
            ),
            (
                proto::ProbeOverrides {
                    down_after: Some(0),
                    ..Default::default()
                },
                "--down-after: down_after must be from 1",
            ),
            (
                proto::ProbeOverrides {
                    alive_codes: vec![200, 408],
                    ..Default::default()
                },
                "--alive-codes: alive code 408 must be",
            ),
            (
                proto::ProbeOverrides {
                    alive_codes: vec![70_000],
                    ..Default::default()
                },
                "--alive-codes: 70000 is not a SIP code",
            ),
        ] {
            let text = message(check_gateway(&probed(probe)).unwrap_err());
            assert!(text.starts_with(needle), "{text}");
        }
        let tenant = proto::Tenant {
            name: "t".into(),
            dial_plan: Some(proto::DialPlan {
                country_code: "44".into(),
                home_area_code: "212".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(message(check_tenant(&tenant).unwrap_err()).starts_with("--home-area-code: "));
        assert!(message(check_name("carrier name", "bad name").unwrap_err())
            .starts_with("carrier name: \"bad name\" must be"));
    }
}
