//! Checking what a command is about to send, before it is sent, with the conversions the node
//! itself runs (`trunkline_api::convert`), and naming the flag at fault when it is refused.
//!
//! The conversions return a [`FieldError`] naming the field as the wire spells it; [`flag_for`]
//! is the one table from field to flag, so no message is ever parsed for its field. A mistake
//! the node would refuse exits 2 here with the flag's name; the node checks again, and it
//! alone knows the rest of the configuration (the carrier exists, no continuity loop through
//! other DIDs...).

use std::{collections::BTreeSet, fmt::Display};

use trunkline_core::{
    inbound::{validate_aor, validate_number},
    routing::{validate_name, Capability},
    FieldError,
};

use crate::context::Failure;

/// A usage failure naming the flag (or argument) at fault.
pub fn usage(flag: &str, reason: impl Display) -> Failure {
    Failure::Usage(format!("{flag}: {reason}"))
}

/// Wire fields whose flag is not simply `--` and the field's last part, `_` written `-`
/// (`dial_plan.home_area_code` is `--home-area-code`).
const FLAGS: &[(&str, &str)] = &[
    ("required_capabilities", "--require"),
    ("max_concurrent_calls", "--max-calls"),
    ("probe.interval_ms", "--probe-interval"),
    ("probe.timeout_ms", "--probe-timeout"),
    ("policy.probe.interval_ms", "--interval"),
    ("policy.probe.timeout_ms", "--timeout"),
    (
        "policy.breaker.consecutive_failures_to_open",
        "--breaker-failures",
    ),
    ("policy.breaker.window_ms", "--breaker-window"),
    ("policy.breaker.min_samples", "--breaker-min-samples"),
    ("policy.breaker.failure_ratio_percent", "--breaker-ratio"),
    ("policy.breaker.cool_down_ms", "--cool-down"),
    (
        "policy.breaker.probe_successes_to_close",
        "--breaker-probe-successes",
    ),
    ("policy.flapping.window_ms", "--flapping-window"),
    ("continuity.triggers.no_answer_ms", "--no-answer"),
    ("continuity.triggers.failure_codes", "--failure-codes"),
    ("window_ms", "--window"),
];

/// The flag that sets the wire field `field`. `key` is how the command names the object's own
/// argument (`tenant name`, `NUMBER`, `AOR`): the key fields are given that way. Every other
/// part of a continuity plan comes from `--continuity`.
pub fn flag_for(field: &str, key: &str) -> String {
    if let Some((_, flag)) = FLAGS.iter().find(|(name, _)| *name == field) {
        return (*flag).to_owned();
    }
    match field {
        "name" | "number" | "aor" | "import_id" | "rule" => key.to_owned(),
        _ if field.starts_with("continuity") => "--continuity".to_owned(),
        _ => {
            let last = field.rsplit('.').next().unwrap_or(field);
            format!("--{}", last.replace('_', "-"))
        }
    }
}

/// A refused field as a usage failure naming its flag; `hint` is added to the end.
pub fn field_failure<'a>(key: &'a str, hint: &'a str) -> impl Fn(FieldError) -> Failure + 'a {
    move |error| {
        usage(
            &flag_for(error.field(), key),
            format!("{}{hint}", error.reason()),
        )
    }
}

/// Checks what a conversion from the wire makes of `item`, naming the flag at fault.
pub fn converts<W: Clone, T>(
    item: &W,
    convert: impl FnOnce(W) -> Result<T, FieldError>,
    key: &str,
) -> Result<T, Failure> {
    convert(item.clone()).map_err(field_failure(key, ""))
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

/// Checks a tenant, carrier, gateway or edge name given as the `NAME` argument or a flag.
pub fn check_name(what: &str, name: &str) -> Result<(), Failure> {
    validate_name("name", name).map_err(|error| usage(what, format!("{name:?} {}", error.reason())))
}

/// Checks a number given as an argument (`NUMBER`, `DID`): E.164 with '+'.
pub fn check_number(what: &str, number: &str) -> Result<(), Failure> {
    validate_number("number", number).map_err(|error| usage(what, error.reason()))
}

/// Checks an address of record given as an argument or a flag: `sip:user@domain`.
pub fn check_aor(what: &str, aor: &str) -> Result<(), Failure> {
    validate_aor("aor", aor).map_err(|error| usage(what, error.reason()))
}

/// Flags that are each optional: none given is their default, so `update` can tell "nothing
/// to change" without naming every flag again.
pub trait Optional: Default + PartialEq {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl<T: Default + PartialEq> Optional for T {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use trunkline_api::convert::{
        carrier_from_proto, device_from_proto, did_from_proto, gateway_from_proto,
        tenant_from_proto,
    };
    use trunkline_client::proto;

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
    fn every_field_maps_to_its_flag() {
        for (field, key, flag) in [
            ("name", "tenant name", "tenant name"),
            ("number", "NUMBER", "NUMBER"),
            ("aor", "AOR", "AOR"),
            ("dial_plan.home_area_code", "", "--home-area-code"),
            ("required_capabilities", "", "--require"),
            ("capabilities", "", "--capabilities"),
            ("translation.plus", "", "--plus"),
            ("max_concurrent_calls", "", "--max-calls"),
            ("probe.interval_ms", "", "--probe-interval"),
            ("probe.down_after", "", "--down-after"),
            ("policy.probe.interval_ms", "", "--interval"),
            ("policy.probe.alive_codes", "", "--alive-codes"),
            ("policy.breaker.cool_down_ms", "", "--cool-down"),
            ("policy.flapping.max_transitions", "", "--max-transitions"),
            ("policy.flapping.window_ms", "", "--flapping-window"),
            ("continuity.triggers.no_answer_ms", "", "--no-answer"),
            ("continuity.targets.ring_timeout_ms", "", "--continuity"),
            ("tenant", "", "--tenant"),
        ] {
            assert_eq!(flag_for(field, key), flag, "{field}");
        }
    }

    fn refused<W: Clone, T>(
        item: W,
        convert: impl FnOnce(W) -> Result<T, FieldError>,
        key: &str,
    ) -> String {
        match converts(&item, convert, key) {
            Ok(_) => panic!("accepted"),
            Err(failure) => message(failure),
        }
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
        assert!(refused(carrier, carrier_from_proto, "carrier name").starts_with("--plus: "));
        let gateway = proto::Gateway {
            name: "gw1".into(),
            carrier: "acme".into(),
            uri: "http://x".into(),
            ..Default::default()
        };
        assert!(refused(gateway, gateway_from_proto, "gateway name").starts_with("--uri: "));
        let probed = |probe: proto::ProbeOverrides| proto::Gateway {
            name: "gw1".into(),
            carrier: "acme".into(),
            uri: "sip:gw.example.net".into(),
            probe: Some(probe),
            ..Default::default()
        };
        assert!(converts(
            &probed(proto::ProbeOverrides {
                interval_ms: Some(5_000),
                alive_codes: vec![200, 404],
                ..Default::default()
            }),
            gateway_from_proto,
            "gateway name"
        )
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
            let text = refused(probed(probe), gateway_from_proto, "gateway name");
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
        assert!(refused(tenant, tenant_from_proto, "tenant name").starts_with("--home-area-code: "));
        assert!(message(check_name("carrier name", "bad name").unwrap_err())
            .starts_with("carrier name: \"bad name\" must be"));
        let did = proto::Did {
            number: "4155550100".into(),
            tenant: "acme".into(),
            ..Default::default()
        };
        assert!(refused(Some(did), did_from_proto, "NUMBER").starts_with("NUMBER: "));
        let device = proto::Device {
            aor: "sip:Alice@Example.com".into(),
            tenant: "acme".into(),
            ..Default::default()
        };
        assert!(refused(Some(device), device_from_proto, "AOR").starts_with("AOR: "));
    }
}
