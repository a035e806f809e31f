//! Tests of half-open trials in route selection: which calls get a breaker-held gateway, at
//! which rank, and how the explanation names it.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::health::{
    is_breaker_trial, BreakerPolicy, BreakerTrials, HealthCommand, HealthPolicy, HealthTable,
    Liveness, TransitionSource,
};
use crate::routing::{
    Carrier, DialPlan, E164Number, Gateway, GatewayHealth, Media, Normalized, RateMatch,
    RouteInput, SipUri, Strategy, Tenant, Translation, Verdict,
};

/// When gw-cheap's breaker opened, in log time.
const OPENED_AT_MS: u64 = 100_000;
const TRIAL_AFTER_MS: u64 = 1_000;
const TRIAL_ONE_IN: u32 = 4;

fn carrier(name: &str) -> Carrier {
    Carrier {
        name: name.to_owned(),
        capabilities: BTreeSet::new(),
        translation: Translation::default(),
        final_codes: BTreeSet::new(),
        enabled: true,
    }
}

fn gateway(carrier: &str, name: &str, priority: u32) -> Gateway {
    Gateway {
        name: name.to_owned(),
        carrier: carrier.to_owned(),
        uri: SipUri::parse(&format!("sip:{name}.example")).unwrap(),
        priority,
        weight: 1,
        max_concurrent_calls: None,
        enabled: true,
        probe: Default::default(),
    }
}

/// The replicated table: `held` went down by `source` at [`OPENED_AT_MS`].
fn table(held: &str, source: TransitionSource, trial_one_in: u32) -> HealthTable {
    let mut table = HealthTable::default();
    let policy = HealthPolicy {
        breaker: BreakerPolicy {
            cool_down_ms: 30_000,
            trial_after_ms: TRIAL_AFTER_MS,
            trial_one_in,
            ..BreakerPolicy::default()
        },
        ..HealthPolicy::default()
    };
    table
        .apply(1, 0, &HealthCommand::SetPolicy(policy), true)
        .unwrap();
    let down = HealthCommand::Transition {
        gateway: held.to_owned(),
        observer_node: 1,
        from: Liveness::Up,
        to: Liveness::Down,
        reason: "breaker: 5 consecutive failed legs, last 503".to_owned(),
        source,
        round_trip_ms: None,
    };
    table.apply(2, OPENED_AT_MS, &down, true).unwrap();
    table
}

/// Carrier cheap (gw-cheap, held by its breaker) and carrier dear (gw-dear-1, gw-dear-2);
/// for each call hash, the gateways offered in order and gw-cheap's explanation.
struct Calls {
    tenant: Tenant,
    destination: Normalized,
    carriers: Vec<Carrier>,
    gateways: Vec<Gateway>,
    health: BTreeMap<String, GatewayHealth>,
    table: HealthTable,
}

impl Calls {
    fn new(table: HealthTable) -> Self {
        let health = BTreeMap::from([("gw-cheap".to_owned(), GatewayHealth::BreakerOpen)]);
        Calls {
            tenant: Tenant {
                name: "acme".to_owned(),
                dial_plan: DialPlan::nanp(),
                strategy: Strategy::LeastCost,
                allowed_carriers: Vec::new(),
                required_capabilities: BTreeSet::new(),
                policy: Default::default(),
                limits: Default::default(),
            },
            destination: Normalized::E164(E164Number::new("14155550100").unwrap()),
            carriers: vec![carrier("cheap"), carrier("dear")],
            gateways: vec![
                gateway("cheap", "gw-cheap", 0),
                gateway("dear", "gw-dear-1", 0),
                gateway("dear", "gw-dear-2", 1),
            ],
            health,
            table,
        }
    }

    /// The gateways offered to the call hashed `call_hash` at `now_ms`, and the verdict and
    /// trial mark of gw-cheap's explanation line.
    fn route(&self, call_hash: u64, now_ms: u64) -> (Vec<String>, Verdict, bool) {
        let rates = [
            RateMatch {
                carrier: "cheap",
                prefix: "1415",
                rate_micros_per_minute: 1_000,
                connect_fee_micros: 0,
            },
            RateMatch {
                carrier: "dear",
                prefix: "1415",
                rate_micros_per_minute: 2_000,
                connect_fee_micros: 0,
            },
        ];
        let input = RouteInput {
            tenant: &self.tenant,
            destination: &self.destination,
            carriers: &self.carriers,
            gateways: &self.gateways,
            health: &self.health,
            concurrent_calls: None,
            rates: &rates,
            media: Media::Voice,
            excluded_carriers: &BTreeSet::new(),
            explain: true,
        };
        let trials = BreakerTrials {
            table: &self.table,
            call_hash,
            now_ms,
        };
        let decision = input.select_with_trials(&trials, &mut SmallRng::seed_from_u64(call_hash));
        assert!(!decision.degraded);
        let legs = decision
            .legs
            .iter()
            .map(|leg| leg.gateway.name.clone())
            .collect();
        let line = decision
            .explanation
            .iter()
            .find(|candidate| candidate.gateway == Some("gw-cheap"))
            .unwrap();
        (legs, line.verdict, line.breaker_trial)
    }
}

#[test]
fn a_sampled_call_tries_a_breaker_held_gateway_at_its_usual_rank_after_the_delay() {
    let calls = Calls::new(table("gw-cheap", TransitionSource::Breaker, TRIAL_ONE_IN));
    let policy = &calls.table.policy().breaker;
    let healthy = ["gw-dear-1", "gw-dear-2"];
    let half_open_ms = OPENED_AT_MS + TRIAL_AFTER_MS;

    // Still in the delay: no call tries it.
    for call in 0..200 {
        let (legs, verdict, trial) = calls.route(call, half_open_ms - 1);
        assert_eq!(legs, healthy, "call {call}");
        assert_eq!(
            verdict.to_string(),
            "dropped: gateway held down by its circuit breaker"
        );
        assert!(!trial);
    }

    // Half-open: the sampled calls get it first (it is the cheapest), the others skip it.
    let mut sampled = 0;
    for call in 0..2_000 {
        let (legs, verdict, trial) = calls.route(call, half_open_ms);
        let expected_trial = is_breaker_trial(policy, OPENED_AT_MS, half_open_ms, call, "gw-cheap");
        assert_eq!(trial, expected_trial, "call {call}");
        if trial {
            sampled += 1;
            assert_eq!(legs, ["gw-cheap", "gw-dear-1", "gw-dear-2"], "call {call}");
            assert_eq!(verdict, Verdict::Kept { rank: 1 });
        } else {
            assert_eq!(legs, healthy, "call {call}");
            assert!(matches!(verdict, Verdict::Dropped(_)), "call {call}");
        }
        // The same call gets the same answer again (on any node, at any later time).
        assert_eq!(calls.route(call, half_open_ms + 50_000).0, legs);
    }
    assert!(
        (400..=600).contains(&sampled),
        "{sampled} of 2000 calls were trials, expected about 500"
    );
}

#[test]
fn only_a_breaker_opening_is_tried_and_trials_can_be_turned_off() {
    let later_ms = OPENED_AT_MS + 10 * TRIAL_AFTER_MS;
    for calls in [
        // Down by its probes: the probes bring it back, not calls.
        Calls::new(table("gw-cheap", TransitionSource::Probe, TRIAL_ONE_IN)),
        // Held by its breaker with trials off.
        Calls::new(table("gw-cheap", TransitionSource::Breaker, 0)),
    ] {
        for call in 0..200 {
            let (legs, _, trial) = calls.route(call, later_ms);
            assert_eq!(legs, ["gw-dear-1", "gw-dear-2"], "call {call}");
            assert!(!trial);
        }
    }
}
