//! What a calling policy adds to a route lookup: `CallingPolicy::check` for a tenant with no
//! policy, and for one with every kind of rule (a tenant scope with 1,000 blocked prefixes and
//! allowed hours in New York, three source scopes, 1,000 extension scopes), for an ordinary
//! call that passes every rule (the worst case: every rule is read) and one the first rules
//! block.
//!
//! Run: `cargo bench -p trunkline-bench --bench policy`.

#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use trunkline_core::policy::{
    AllowedHours, CallingPolicy, PolicyCall, PolicyRules, SourceKind, MAX_POLICY_EXTENSIONS,
};
use trunkline_core::routing::{classify, normalize, DialPlan, HighRiskList};

/// Monday 2026-11-30 15:00 UTC, 10:00 in New York: inside office hours.
const OFFICE_HOURS_MS: u64 = 1_796_050_800_000;

fn busy_policy() -> CallingPolicy {
    let prefixes: BTreeSet<String> = (0..1_000).map(|n| format!("4487{n:03}")).collect();
    let rules = PolicyRules {
        block_premium: Some(true),
        allowed_countries: Some(["44", "353", "33", "49"].map(str::to_owned).into()),
        blocked_prefixes: Some(prefixes),
        allowed_hours: Some(
            AllowedHours::parse("America/New_York", "mon-fri 08:00-18:00, sat 09:00-13:00")
                .expect("valid hours"),
        ),
        ..PolicyRules::default()
    };
    CallingPolicy {
        tenant: rules,
        sources: SourceKind::ALL
            .into_iter()
            .map(|kind| {
                let rules = PolicyRules {
                    block_long_distance: Some(kind == SourceKind::Voicemail),
                    ..PolicyRules::default()
                };
                (kind, rules)
            })
            .collect(),
        extensions: (0..MAX_POLICY_EXTENSIONS)
            .map(|n| {
                let rules = PolicyRules {
                    block_premium: Some(n % 2 == 0),
                    ..PolicyRules::default()
                };
                (format!("{}", 2000 + n), rules)
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

fn policy(criterion: &mut Criterion) {
    let plan = DialPlan {
        home_area_code: Some("212".to_owned()),
        ..DialPlan::nanp()
    };
    let high_risk = HighRiskList::default();
    let busy = busy_policy();
    busy.validate(&plan).expect("the benchmark policy is valid");
    let empty = CallingPolicy::default();
    let mut group = criterion.benchmark_group("policy_check");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, policy, dialled, extension) in [
        ("no policy", &empty, "011442071234567", None),
        ("every rule, passes", &busy, "011442071234567", Some("2001")),
        (
            "every rule, premium blocked",
            &busy,
            "9005551234",
            Some("2000"),
        ),
    ] {
        let destination = normalize(dialled, &plan).expect("a valid number");
        let class = classify(&destination, &plan, &high_risk);
        let call = PolicyCall {
            destination: &destination,
            class,
            dial_plan: &plan,
            source: SourceKind::Phone,
            extension,
            now_ms: OFFICE_HOURS_MS,
        };
        group.bench_function(name, |bencher| {
            bencher.iter(|| black_box(policy).check(black_box(&call)))
        });
    }
    group.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
