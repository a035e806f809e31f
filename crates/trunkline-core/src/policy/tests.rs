//! Golden tests of calling policies: one case per rule, the scopes' precedence, emergency
//! calls under every rule, and the contradictions refused when written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::routing::{classify, normalize, HighRiskList};

/// Monday 2026-11-30 12:00 UTC (07:00 in New York).
const MONDAY_NOON_UTC_MS: u64 = 1_796_040_000_000;
const HOUR_MS: u64 = 3_600_000;

fn nanp_212() -> DialPlan {
    DialPlan {
        home_area_code: Some("212".to_owned()),
        ..DialPlan::nanp()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// Cuba is on the operator's high-risk list.
fn high_risk() -> HighRiskList {
    HighRiskList::new(["53".to_owned()]).unwrap()
}

struct Call<'a> {
    dialled: &'a str,
    source: SourceKind,
    extension: Option<&'a str>,
    now_ms: u64,
}

fn call(dialled: &str) -> Call<'_> {
    Call {
        dialled,
        source: SourceKind::Phone,
        extension: None,
        now_ms: MONDAY_NOON_UTC_MS,
    }
}

/// `None` when the call goes ahead, else the reason and SIP code.
fn decide(policy: &CallingPolicy, plan: &DialPlan, call: &Call<'_>) -> Option<(BlockReason, u16)> {
    let destination = normalize(call.dialled, plan).unwrap();
    let class = classify(&destination, plan, &high_risk());
    policy
        .check(&PolicyCall {
            destination: &destination,
            class,
            dial_plan: plan,
            source: call.source,
            extension: call.extension,
            now_ms: call.now_ms,
        })
        .err()
        .map(|blocked| (blocked.reason, blocked.sip_code))
}

fn tenant_rules(rules: PolicyRules) -> CallingPolicy {
    CallingPolicy {
        tenant: rules,
        ..CallingPolicy::default()
    }
}

#[test]
fn each_rule_blocks_what_it_names_and_nothing_else() {
    let plan = nanp_212();
    let blocked = |reason| Some((reason, DEFAULT_REFUSAL_SIP_CODE));
    type Case<'a> = (&'a str, PolicyRules, &'a str, Option<(BlockReason, u16)>);
    let cases: Vec<Case<'_>> = vec![
        (
            "no rules: international",
            PolicyRules::default(),
            "011442071234567",
            None,
        ),
        (
            "block international: the UK",
            PolicyRules {
                block_international: Some(true),
                ..PolicyRules::default()
            },
            "011442071234567",
            blocked(BlockReason::International),
        ),
        (
            "block international: a Caribbean NANP number is abroad",
            PolicyRules {
                block_international: Some(true),
                ..PolicyRules::default()
            },
            "18765550100",
            blocked(BlockReason::International),
        ),
        (
            "block international: national goes through",
            PolicyRules {
                block_international: Some(true),
                ..PolicyRules::default()
            },
            "4155550100",
            None,
        ),
        (
            "block premium: 900",
            PolicyRules {
                block_premium: Some(true),
                ..PolicyRules::default()
            },
            "9005551234",
            blocked(BlockReason::Premium),
        ),
        (
            "block premium: 976 exchange",
            PolicyRules {
                block_premium: Some(true),
                ..PolicyRules::default()
            },
            "2129760100",
            blocked(BlockReason::Premium),
        ),
        (
            "block premium: the operator's high-risk list",
            PolicyRules {
                block_premium: Some(true),
                ..PolicyRules::default()
            },
            "011537123456",
            blocked(BlockReason::Premium),
        ),
        (
            "block premium: toll-free goes through",
            PolicyRules {
                block_premium: Some(true),
                ..PolicyRules::default()
            },
            "8005550100",
            None,
        ),
        (
            "premium allowed, international blocked: a high-risk number abroad",
            PolicyRules {
                block_international: Some(true),
                ..PolicyRules::default()
            },
            "011537123456",
            blocked(BlockReason::International),
        ),
        (
            "block long distance: another area code",
            PolicyRules {
                block_long_distance: Some(true),
                ..PolicyRules::default()
            },
            "4155550100",
            blocked(BlockReason::LongDistance),
        ),
        (
            "block long distance: the home area goes through",
            PolicyRules {
                block_long_distance: Some(true),
                ..PolicyRules::default()
            },
            "5550100",
            None,
        ),
        (
            "block long distance: toll-free goes through",
            PolicyRules {
                block_long_distance: Some(true),
                ..PolicyRules::default()
            },
            "18005550100",
            None,
        ),
        (
            "allowed countries: the UK allowed",
            PolicyRules {
                allowed_countries: Some(set(&["44", "353"])),
                ..PolicyRules::default()
            },
            "011442071234567",
            None,
        ),
        (
            "allowed countries: France refused",
            PolicyRules {
                allowed_countries: Some(set(&["44", "353"])),
                ..PolicyRules::default()
            },
            "011 33 1 42 68 53 00",
            blocked(BlockReason::CountryNotAllowed),
        ),
        (
            "allowed countries: home country always allowed",
            PolicyRules {
                allowed_countries: Some(set(&["44"])),
                ..PolicyRules::default()
            },
            "4155550100",
            None,
        ),
        (
            "blocked prefix: whatever the class",
            PolicyRules {
                blocked_prefixes: Some(set(&["1415555"])),
                ..PolicyRules::default()
            },
            "4155550100",
            blocked(BlockReason::BlockedPrefix),
        ),
        (
            "blocked prefix: others go through",
            PolicyRules {
                blocked_prefixes: Some(set(&["1415555"])),
                ..PolicyRules::default()
            },
            "4155560100",
            None,
        ),
        (
            "disabled: everything but emergency",
            PolicyRules {
                disabled: Some(true),
                ..PolicyRules::default()
            },
            "5550100",
            blocked(BlockReason::ExtensionDisabled),
        ),
        (
            "disabled: internal calls too",
            PolicyRules {
                disabled: Some(true),
                ..PolicyRules::default()
            },
            "2001",
            blocked(BlockReason::ExtensionDisabled),
        ),
        (
            "hours: Monday 07:00 in New York is before 08:00",
            PolicyRules {
                allowed_hours: Some(
                    AllowedHours::parse("America/New_York", "mon-fri 08:00-18:00").unwrap(),
                ),
                ..PolicyRules::default()
            },
            "5550100",
            blocked(BlockReason::OutsideAllowedHours),
        ),
        (
            "hours: 12:00 UTC is in a UTC window",
            PolicyRules {
                allowed_hours: Some(AllowedHours::parse("UTC", "mon-fri 08:00-18:00").unwrap()),
                ..PolicyRules::default()
            },
            "5550100",
            None,
        ),
        (
            "a SIP code of the operator's choosing",
            PolicyRules {
                block_international: Some(true),
                refusal_sip_code: Some(603),
                ..PolicyRules::default()
            },
            "011442071234567",
            Some((BlockReason::International, 603)),
        ),
    ];
    for (name, rules, dialled, expected) in cases {
        let policy = tenant_rules(rules);
        policy.validate(&plan).unwrap();
        assert_eq!(decide(&policy, &plan, &call(dialled)), expected, "{name}");
    }
}

#[test]
fn the_first_rule_that_applies_names_the_block() {
    let plan = nanp_212();
    let policy = tenant_rules(PolicyRules {
        disabled: Some(false),
        block_international: Some(true),
        block_premium: Some(true),
        blocked_prefixes: Some(set(&["53"])),
        ..PolicyRules::default()
    });
    // Cuba: high-risk, abroad and a blocked prefix; the prefix is checked first.
    assert_eq!(
        decide(&policy, &plan, &call("011537123456")).map(|(reason, _)| reason),
        Some(BlockReason::BlockedPrefix)
    );
}

#[test]
fn the_narrowest_scope_that_sets_a_rule_wins() {
    let plan = nanp_212();
    let policy = CallingPolicy {
        tenant: PolicyRules {
            block_international: Some(true),
            refusal_sip_code: Some(403),
            ..PolicyRules::default()
        },
        sources: BTreeMap::from([(
            SourceKind::Voicemail,
            PolicyRules {
                block_long_distance: Some(true),
                refusal_sip_code: Some(488),
                ..PolicyRules::default()
            },
        )]),
        extensions: BTreeMap::from([
            (
                "2001".to_owned(),
                PolicyRules {
                    block_international: Some(false),
                    ..PolicyRules::default()
                },
            ),
            (
                "2002".to_owned(),
                PolicyRules {
                    disabled: Some(true),
                    ..PolicyRules::default()
                },
            ),
        ]),
    };
    policy.validate(&plan).unwrap();
    let uk = "011442071234567";
    let from = |extension, source| Call {
        extension,
        source,
        ..call(uk)
    };
    assert_eq!(
        decide(&policy, &plan, &from(None, SourceKind::Phone)),
        Some((BlockReason::International, 403))
    );
    // Extension 2001 lifts the tenant's block.
    assert_eq!(
        decide(&policy, &plan, &from(Some("2001"), SourceKind::Phone)),
        None
    );
    // Voicemail inherits the tenant's block and answers with its own code.
    assert_eq!(
        decide(&policy, &plan, &from(None, SourceKind::Voicemail)),
        Some((BlockReason::International, 488))
    );
    // 2001's voicemail: the extension lifts international; voicemail still blocks long distance.
    assert_eq!(
        decide(&policy, &plan, &from(Some("2001"), SourceKind::Voicemail)),
        None
    );
    let long_distance = Call {
        extension: Some("2001"),
        source: SourceKind::Voicemail,
        ..call("4155550100")
    };
    assert_eq!(
        decide(&policy, &plan, &long_distance),
        Some((BlockReason::LongDistance, 488))
    );
    assert_eq!(
        decide(&policy, &plan, &from(Some("2002"), SourceKind::Phone)).map(|(reason, _)| reason),
        Some(BlockReason::ExtensionDisabled)
    );
    // An extension with no scope of its own gets the tenant's rules.
    assert_eq!(
        decide(&policy, &plan, &from(Some("2999"), SourceKind::Phone)),
        Some((BlockReason::International, 403))
    );
}

/// Every rule set to block, in every scope.
fn blocks_everything() -> PolicyRules {
    PolicyRules {
        disabled: Some(true),
        block_international: Some(true),
        block_long_distance: Some(true),
        block_premium: Some(true),
        allowed_countries: None,
        blocked_prefixes: Some(set(&["1", "9", "91", "911", "933", "1911", "1933"])),
        allowed_hours: Some(AllowedHours::parse("UTC", "sun 03:00-03:01").unwrap()),
        refusal_sip_code: Some(403),
    }
}

#[test]
fn emergency_calls_go_through_every_rule_in_every_scope() {
    let plan = nanp_212();
    let policy = CallingPolicy {
        tenant: blocks_everything(),
        sources: SourceKind::ALL
            .into_iter()
            .map(|kind| (kind, blocks_everything()))
            .collect(),
        extensions: BTreeMap::from([("2001".to_owned(), blocks_everything())]),
    };
    policy.validate(&plan).unwrap();
    for dialled in ["911", "933", "1911"] {
        for source in SourceKind::ALL {
            for extension in [None, Some("2001"), Some("2002")] {
                for now_ms in [MONDAY_NOON_UTC_MS, MONDAY_NOON_UTC_MS + 100 * HOUR_MS] {
                    let call = Call {
                        dialled,
                        source,
                        extension,
                        now_ms,
                    };
                    assert_eq!(
                        decide(&policy, &plan, &call),
                        None,
                        "{dialled} from {source} {extension:?}"
                    );
                }
            }
        }
        // The same policy refuses an ordinary call.
        assert!(decide(&policy, &plan, &call("5550100")).is_some());
    }
    // Another country's emergency numbers too.
    let uk = DialPlan {
        country_code: "44".to_owned(),
        home_area_code: None,
        international_prefix: "00".to_owned(),
        national_prefix: "0".to_owned(),
        emergency_numbers: set(&["999", "112"]),
        extension_min_digits: 3,
        extension_max_digits: 4,
    };
    let mut uk_policy = policy.clone();
    uk_policy.tenant.block_long_distance = None;
    for rules in uk_policy
        .sources
        .values_mut()
        .chain(uk_policy.extensions.values_mut())
    {
        rules.block_long_distance = None;
    }
    uk_policy.validate(&uk).unwrap();
    for dialled in ["999", "112"] {
        assert_eq!(decide(&uk_policy, &uk, &call(dialled)), None, "{dialled}");
    }
}

#[test]
fn allowed_hours_follow_the_time_zone_and_cross_midnight() {
    let night = AllowedHours::parse("America/New_York", "mon-fri 22:00-06:00").unwrap();
    // Monday 12:00 UTC is Monday 07:00 in New York (EST, UTC-5): outside.
    assert!(!night.allows(MONDAY_NOON_UTC_MS));
    // Tuesday 04:00 UTC is Monday 23:00 in New York: inside Monday night's window.
    assert!(night.allows(MONDAY_NOON_UTC_MS + 16 * HOUR_MS));
    // Saturday 10:00 UTC is Saturday 05:00 in New York: Friday night's window runs on.
    assert!(night.allows(MONDAY_NOON_UTC_MS + (4 * 24 + 22) * HOUR_MS));
    // Sunday 10:00 UTC is Sunday 05:00: no window started on Saturday night.
    assert!(!night.allows(MONDAY_NOON_UTC_MS + (5 * 24 + 22) * HOUR_MS));
    // Daylight saving: 2026-07-06 (a Monday) 12:00 UTC is 08:00 EDT, inside office hours.
    let office = AllowedHours::parse("America/New_York", "mon-fri 08:00-18:00").unwrap();
    let july_monday_noon_utc = 1_783_339_200_000;
    assert!(office.allows(july_monday_noon_utc));
    assert!(!office.allows(MONDAY_NOON_UTC_MS));
    assert!(AllowedHours::any().allows(MONDAY_NOON_UTC_MS));
}

#[test]
fn allowed_hours_text_round_trips_and_bad_text_names_the_fault() {
    for (zone, text, canonical) in [
        (
            "Europe/London",
            "mon-fri 08:00-18:00, sat 09:00-13:00",
            "mon-fri 08:00-18:00, sat 09:00-13:00",
        ),
        ("", "daily 00:00-24:00", "daily 00:00-24:00"),
        ("UTC", "fri-mon 20:00-02:00", "fri-mon 20:00-02:00"),
        ("UTC", "any", "any"),
        ("UTC", "SUN 10:00-11:00", "sun 10:00-11:00"),
    ] {
        let hours = AllowedHours::parse(zone, text).unwrap();
        assert_eq!(hours.windows_text(), canonical, "{text}");
        let json = serde_json::to_string(&hours).unwrap();
        assert_eq!(serde_json::from_str::<AllowedHours>(&json).unwrap(), hours);
    }
    for (zone, text, field, needle) in [
        (
            "Mars/Olympus",
            "mon 08:00-09:00",
            "time_zone",
            "not a time zone",
        ),
        ("UTC", "monday 08:00-09:00", "allowed_hours", "not a day"),
        ("UTC", "mon 8:00-09:00", "allowed_hours", "not a time"),
        ("UTC", "mon 08:00-24:01", "allowed_hours", "not a time"),
        ("UTC", "mon 24:00-08:00", "allowed_hours", "not a time"),
        ("UTC", "mon 08:00-08:00", "allowed_hours", "same time"),
        ("UTC", "mon 08:00", "allowed_hours", "not a time range"),
        ("UTC", "08:00-09:00", "allowed_hours", "not a window"),
    ] {
        let error = AllowedHours::parse(zone, text).unwrap_err();
        assert_eq!(error.field(), field, "{text}");
        assert!(error.reason().contains(needle), "{text}: {error}");
    }
}

#[test]
fn contradictions_and_absurd_values_are_refused_when_written() {
    let plan = nanp_212();
    let cases: Vec<(&str, CallingPolicy, DialPlan, &str, &str)> = vec![
        (
            "block international with allowed countries abroad, across scopes",
            CallingPolicy {
                tenant: PolicyRules {
                    block_international: Some(true),
                    ..PolicyRules::default()
                },
                extensions: BTreeMap::from([(
                    "2001".to_owned(),
                    PolicyRules {
                        allowed_countries: Some(set(&["44"])),
                        ..PolicyRules::default()
                    },
                )]),
                ..CallingPolicy::default()
            },
            plan.clone(),
            "policy.block_international",
            "extension 2001",
        ),
        (
            "long distance without a home area",
            tenant_rules(PolicyRules {
                block_long_distance: Some(true),
                ..PolicyRules::default()
            }),
            DialPlan::nanp(),
            "policy.block_long_distance",
            "home_area_code",
        ),
        (
            "a country code with letters",
            tenant_rules(PolicyRules {
                allowed_countries: Some(set(&["UK"])),
                ..PolicyRules::default()
            }),
            plan.clone(),
            "policy.tenant.allowed_countries",
            "country calling code",
        ),
        (
            "a prefix with a plus",
            CallingPolicy {
                sources: BTreeMap::from([(
                    SourceKind::AutoAttendant,
                    PolicyRules {
                        blocked_prefixes: Some(set(&["+1900"])),
                        ..PolicyRules::default()
                    },
                )]),
                ..CallingPolicy::default()
            },
            plan.clone(),
            "policy.sources[auto-attendant].blocked_prefixes",
            "E.164 prefix",
        ),
        (
            "a SIP code that is not a failure",
            tenant_rules(PolicyRules {
                refusal_sip_code: Some(200),
                ..PolicyRules::default()
            }),
            plan.clone(),
            "policy.tenant.refusal_sip_code",
            "400 to 699",
        ),
        (
            "an extension key that is no name",
            CallingPolicy {
                extensions: BTreeMap::from([("20 01".to_owned(), PolicyRules::default())]),
                ..CallingPolicy::default()
            },
            plan.clone(),
            "policy.extensions.extension",
            "ASCII letters",
        ),
    ];
    for (name, policy, plan, field, needle) in cases {
        let error = policy.validate(&plan).unwrap_err();
        assert_eq!(error.field(), field, "{name}: {error}");
        assert!(error.reason().contains(needle), "{name}: {error}");
    }
    // Allowing only the home country alongside the block is no contradiction.
    tenant_rules(PolicyRules {
        block_international: Some(true),
        allowed_countries: Some(set(&["1"])),
        ..PolicyRules::default()
    })
    .validate(&plan)
    .unwrap();
    let too_many = CallingPolicy {
        extensions: (0..=MAX_POLICY_EXTENSIONS)
            .map(|n| (format!("e{n}"), PolicyRules::default()))
            .collect(),
        ..CallingPolicy::default()
    };
    assert_eq!(
        too_many.validate(&plan).unwrap_err().field(),
        "policy.extensions"
    );
}

#[test]
fn source_kinds_read_as_they_are_written() {
    for kind in SourceKind::ALL {
        assert_eq!(kind.as_str().parse::<SourceKind>().unwrap(), kind);
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{kind}\""));
    }
    assert_eq!("fax".parse::<SourceKind>().unwrap_err().field(), "source");
}
