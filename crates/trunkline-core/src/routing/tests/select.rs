//! Tests of route selection: golden decisions with their explanations for each rule, property
//! tests of the invariants over random configurations, and the weighted draw's distribution.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::routing::{
    select_route, Capability, Carrier, DialPlan, E164Number, Gateway, GatewayHealth, Media,
    Normalized, RateMatch, RouteDecision, RouteInput, SipUri, Strategy, Tenant, Translation,
    Verdict,
};

/// A routing configuration and call, built up by each test.
#[derive(Clone, Debug)]
struct World {
    tenant: Tenant,
    destination: Normalized,
    carriers: Vec<Carrier>,
    gateways: Vec<Gateway>,
    health: BTreeMap<String, GatewayHealth>,
    concurrent_calls: Option<BTreeMap<String, u32>>,
    /// `(carrier, prefix, rate, connect fee)`: what the prefix index would have answered.
    rates: Vec<(String, String, u64, u64)>,
    media: Media,
    excluded: BTreeSet<String>,
}

impl World {
    fn new(strategy: Strategy) -> Self {
        World {
            tenant: Tenant {
                name: "acme".to_owned(),
                dial_plan: DialPlan::nanp(),
                strategy,
                allowed_carriers: Vec::new(),
                required_capabilities: BTreeSet::new(),
                policy: Default::default(),
                limits: Default::default(),
            },
            destination: Normalized::E164(E164Number::new("14155550100").unwrap()),
            carriers: Vec::new(),
            gateways: Vec::new(),
            health: BTreeMap::new(),
            concurrent_calls: None,
            rates: Vec::new(),
            media: Media::Voice,
            excluded: BTreeSet::new(),
        }
    }

    /// Adds an enabled carrier with the given capabilities and a rate for the destination.
    fn carrier(
        &mut self,
        name: &str,
        capabilities: &[Capability],
        rate: u64,
        fee: u64,
    ) -> &mut Self {
        self.carriers.push(Carrier {
            name: name.to_owned(),
            capabilities: capabilities.iter().copied().collect(),
            translation: Translation::default(),
            final_codes: BTreeSet::new(),
            enabled: true,
        });
        let prefix = self
            .destination
            .routing_digits()
            .unwrap()
            .get(..4)
            .unwrap()
            .to_owned();
        self.rates.push((name.to_owned(), prefix, rate, fee));
        self
    }

    /// Adds an enabled UDP gateway to `carrier`.
    fn gateway(&mut self, carrier: &str, name: &str, priority: u32, weight: u32) -> &mut Self {
        self.gateways.push(Gateway {
            name: name.to_owned(),
            carrier: carrier.to_owned(),
            uri: SipUri::parse(&format!("sip:{name}.example")).unwrap(),
            priority,
            weight,
            max_concurrent_calls: None,
            enabled: true,
            probe: Default::default(),
        });
        self
    }

    fn carrier_mut(&mut self, name: &str) -> &mut Carrier {
        self.carriers
            .iter_mut()
            .find(|carrier| carrier.name == name)
            .unwrap()
    }

    fn gateway_mut(&mut self, name: &str) -> &mut Gateway {
        self.gateways
            .iter_mut()
            .find(|gateway| gateway.name == name)
            .unwrap()
    }

    fn decide(&self, seed: u64) -> Outcome {
        self.decide_with(seed, &self.carriers, &self.gateways)
    }

    fn decide_with(&self, seed: u64, carriers: &[Carrier], gateways: &[Gateway]) -> Outcome {
        let rates: Vec<RateMatch<'_>> = self
            .rates
            .iter()
            .map(|(carrier, prefix, rate, fee)| RateMatch {
                carrier,
                prefix,
                rate_micros_per_minute: *rate,
                connect_fee_micros: *fee,
            })
            .collect();
        let input = RouteInput {
            tenant: &self.tenant,
            destination: &self.destination,
            carriers,
            gateways,
            health: &self.health,
            concurrent_calls: self.concurrent_calls.as_ref(),
            rates: &rates,
            media: self.media,
            excluded_carriers: &self.excluded,
            explain: true,
        };
        Outcome::of(&select_route(&input, &mut SmallRng::seed_from_u64(seed)))
    }
}

/// A decision copied out of the borrowed form, so tests can keep and compare it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Outcome {
    legs: Vec<OwnedLeg>,
    explanation: Vec<OwnedCandidate>,
    degraded: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnedLeg {
    carrier: String,
    gateway: String,
    uri: String,
    dial_string: String,
    rate_micros_per_minute: u64,
    connect_fee_micros: u64,
    prefix: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnedCandidate {
    carrier: String,
    gateway: Option<String>,
    verdict: Verdict,
}

impl Outcome {
    fn of(decision: &RouteDecision<'_>) -> Self {
        Outcome {
            legs: decision
                .legs
                .iter()
                .map(|leg| OwnedLeg {
                    carrier: leg.carrier.name.clone(),
                    gateway: leg.gateway.name.clone(),
                    uri: leg.gateway.uri.to_string(),
                    dial_string: leg.dial_string(),
                    rate_micros_per_minute: leg.rate.rate_micros_per_minute,
                    connect_fee_micros: leg.rate.connect_fee_micros,
                    prefix: leg.rate.prefix.to_owned(),
                })
                .collect(),
            explanation: decision
                .explanation
                .iter()
                .map(|candidate| OwnedCandidate {
                    carrier: candidate.carrier.to_owned(),
                    gateway: candidate.gateway.map(str::to_owned),
                    verdict: candidate.verdict,
                })
                .collect(),
            degraded: decision.degraded,
        }
    }
}

fn render(decision: &Outcome) -> String {
    let mut text = String::new();
    for (position, leg) in decision.legs.iter().enumerate() {
        writeln!(
            text,
            "{}. {} {} {} {} {}/{} {}",
            position + 1,
            leg.carrier,
            leg.gateway,
            leg.uri,
            leg.dial_string,
            leg.rate_micros_per_minute,
            leg.connect_fee_micros,
            if leg.prefix.is_empty() {
                "-"
            } else {
                &leg.prefix
            }
        )
        .unwrap();
    }
    for candidate in &decision.explanation {
        match &candidate.gateway {
            None => writeln!(text, "{}: {}", candidate.carrier, candidate.verdict),
            Some(gateway) => writeln!(
                text,
                "  {}/{gateway}: {}",
                candidate.carrier, candidate.verdict
            ),
        }
        .unwrap();
    }
    text
}

#[track_caller]
fn check(world: &World, expected: &str) {
    let actual = render(&world.decide(1));
    // Expected lines are indented to sit in the test; a leading '|' marks a nested line.
    let expected: String = expected
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| format!("{}\n", line.strip_prefix('|').unwrap_or(line)))
        .collect();
    assert_eq!(actual, expected, "\n{actual}");
}

#[test]
fn least_cost_orders_by_rate_then_fee_then_priority_then_name() {
    let mut world = World::new(Strategy::LeastCost);
    world
        .carrier("alpha", &[], 5_000, 0)
        .gateway("alpha", "alpha-1", 0, 1)
        .carrier("beta", &[], 4_000, 100)
        .gateway("beta", "beta-1", 0, 1)
        .carrier("gamma", &[], 4_000, 50)
        .gateway("gamma", "gamma-1", 5, 1)
        .carrier("delta", &[], 4_000, 50)
        .gateway("delta", "delta-1", 1, 1)
        .gateway("delta", "delta-2", 0, 1)
        .gateway("delta", "delta-3", 0, 1)
        .carrier("epsilon", &[], 1, 0)
        .gateway("epsilon", "epsilon-1", 0, 1)
        .carrier("zeta", &[], 1, 0)
        .gateway("zeta", "zeta-1", 0, 1);
    world.gateway_mut("delta-3").enabled = false;
    world.rates.retain(|(carrier, ..)| carrier != "epsilon");
    world.carrier_mut("zeta").enabled = false;
    check(
        &world,
        "
        1. delta delta-2 sip:delta-2.example 14155550100 4000/50 1415
        2. delta delta-1 sip:delta-1.example 14155550100 4000/50 1415
        3. gamma gamma-1 sip:gamma-1.example 14155550100 4000/50 1415
        4. beta beta-1 sip:beta-1.example 14155550100 4000/100 1415
        5. alpha alpha-1 sip:alpha-1.example 14155550100 5000/0 1415
        alpha: kept: rank 4
        |  alpha/alpha-1: kept: rank 5
        beta: kept: rank 3
        |  beta/beta-1: kept: rank 4
        delta: kept: rank 1
        |  delta/delta-1: kept: rank 2
        |  delta/delta-2: kept: rank 1
        |  delta/delta-3: dropped: gateway disabled
        epsilon: dropped: no matching prefix
        gamma: kept: rank 2
        |  gamma/gamma-1: kept: rank 3
        zeta: dropped: carrier disabled
        ",
    );
}

#[test]
fn priority_follows_the_tenants_carrier_list() {
    let mut world = World::new(Strategy::Priority);
    world
        .carrier("alpha", &[], 1_000, 0)
        .gateway("alpha", "alpha-1", 0, 1)
        .carrier("beta", &[], 2_000, 0)
        .gateway("beta", "beta-1", 0, 1)
        .carrier("gamma", &[], 3_000, 0)
        .gateway("gamma", "gamma-1", 9, 1)
        .carrier("delta", &[], 1, 0)
        .gateway("delta", "delta-1", 0, 1);
    world.tenant.allowed_carriers = vec!["gamma".to_owned(), "alpha".to_owned(), "beta".to_owned()];
    check(
        &world,
        "
        1. gamma gamma-1 sip:gamma-1.example 14155550100 3000/0 1415
        2. alpha alpha-1 sip:alpha-1.example 14155550100 1000/0 1415
        3. beta beta-1 sip:beta-1.example 14155550100 2000/0 1415
        alpha: kept: rank 2
        |  alpha/alpha-1: kept: rank 2
        beta: kept: rank 3
        |  beta/beta-1: kept: rank 3
        delta: dropped: not allowed for the tenant
        gamma: kept: rank 1
        |  gamma/gamma-1: kept: rank 1
        ",
    );
    // Without a list, the best gateway priority decides, then the name.
    world.tenant.allowed_carriers.clear();
    let order: Vec<String> = world
        .decide(1)
        .legs
        .into_iter()
        .map(|leg| leg.carrier)
        .collect();
    assert_eq!(order, ["alpha", "beta", "delta", "gamma"]);
}

#[test]
fn unusable_gateways_are_dropped_with_their_reason() {
    let mut world = World::new(Strategy::LeastCost);
    world
        .carrier("alpha", &[], 1_000, 0)
        .gateway("alpha", "alpha-down", 0, 1)
        .gateway("alpha", "alpha-drained", 0, 1)
        .gateway("alpha", "alpha-full", 0, 1)
        .gateway("alpha", "alpha-ok", 0, 1)
        .gateway("alpha", "alpha-unknown-health", 1, 1)
        .carrier("beta", &[], 2_000, 0)
        .gateway("beta", "beta-down", 0, 1);
    world
        .health
        .insert("alpha-down".to_owned(), GatewayHealth::Down);
    world
        .health
        .insert("alpha-drained".to_owned(), GatewayHealth::Drained);
    world
        .health
        .insert("alpha-ok".to_owned(), GatewayHealth::Up);
    world
        .health
        .insert("beta-down".to_owned(), GatewayHealth::Down);
    world.gateway_mut("alpha-full").max_concurrent_calls = Some(10);
    world.gateway_mut("alpha-ok").max_concurrent_calls = Some(10);
    world.concurrent_calls = Some(BTreeMap::from([
        ("alpha-full".to_owned(), 10),
        ("alpha-ok".to_owned(), 9),
    ]));
    check(
        &world,
        "
        1. alpha alpha-ok sip:alpha-ok.example 14155550100 1000/0 1415
        2. alpha alpha-unknown-health sip:alpha-unknown-health.example 14155550100 1000/0 1415
        alpha: kept: rank 1
        |  alpha/alpha-down: dropped: gateway down
        |  alpha/alpha-drained: dropped: gateway drained
        |  alpha/alpha-full: dropped: gateway at capacity
        |  alpha/alpha-ok: kept: rank 1
        |  alpha/alpha-unknown-health: kept: rank 2
        beta: dropped: no usable gateway
        |  beta/beta-down: dropped: gateway down
        ",
    );
    // Without call counts, limits cannot be checked and the gateway is used.
    world.concurrent_calls = None;
    assert_eq!(world.decide(1).legs.len(), 3);
}

#[test]
fn a_breaker_alone_never_refuses_every_call() {
    let mut world = World::new(Strategy::LeastCost);
    world
        .carrier("alpha", &[], 1_000, 0)
        .gateway("alpha", "alpha-held", 0, 1)
        .carrier("beta", &[], 2_000, 0)
        .gateway("beta", "beta-up", 0, 1)
        .gateway("beta", "beta-probed-down", 1, 1);
    let health = |world: &mut World, gateway: &str, state| {
        world.health.insert(gateway.to_owned(), state);
    };
    health(&mut world, "alpha-held", GatewayHealth::BreakerOpen);
    health(&mut world, "beta-probed-down", GatewayHealth::Down);
    // With a usable gateway, one held by its breaker is skipped like a down one.
    check(
        &world,
        "
        1. beta beta-up sip:beta-up.example 14155550100 2000/0 1415
        alpha: dropped: no usable gateway
        |  alpha/alpha-held: dropped: gateway held down by its circuit breaker
        beta: kept: rank 1
        |  beta/beta-probed-down: dropped: gateway down
        |  beta/beta-up: kept: rank 1
        ",
    );
    assert!(!world.decide(1).degraded);
    // Nothing else usable: the breaker-held gateway is offered, the decision degraded; one
    // its probes hold down is still not.
    health(&mut world, "beta-up", GatewayHealth::Down);
    let decision = world.decide(1);
    assert!(decision.degraded);
    let legs: Vec<&str> = decision
        .legs
        .iter()
        .map(|leg| leg.gateway.as_str())
        .collect();
    assert_eq!(legs, ["alpha-held"]);
    // Every gateway down by its probes: refused, not degraded.
    health(&mut world, "alpha-held", GatewayHealth::Down);
    let decision = world.decide(1);
    assert!(decision.legs.is_empty() && !decision.degraded);
}

#[test]
fn fax_needs_t38_and_tenants_get_the_capabilities_they_require() {
    let mut world = World::new(Strategy::LeastCost);
    world
        .carrier("alpha", &[Capability::T38], 1_000, 0)
        .gateway("alpha", "alpha-udp", 0, 1)
        .carrier("beta", &[Capability::Tls, Capability::Srtp], 2_000, 0)
        .gateway("beta", "beta-udp", 0, 1)
        .gateway("beta", "beta-tls", 1, 1)
        .carrier("gamma", &[Capability::Tls], 3_000, 0)
        .gateway("gamma", "gamma-tls", 0, 1);
    world.gateway_mut("beta-tls").uri = SipUri::parse("sips:beta-tls.example").unwrap();
    world.gateway_mut("gamma-tls").uri =
        SipUri::parse("sip:gamma-tls.example;transport=tls").unwrap();

    world.media = Media::Fax;
    check(
        &world,
        "
        1. alpha alpha-udp sip:alpha-udp.example 14155550100 1000/0 1415
        alpha: kept: rank 1
        |  alpha/alpha-udp: kept: rank 1
        beta: dropped: lacks capability t38
        gamma: dropped: lacks capability t38
        ",
    );

    world.media = Media::Voice;
    world.tenant.required_capabilities = BTreeSet::from([Capability::Tls, Capability::Srtp]);
    check(
        &world,
        "
        1. beta beta-tls sips:beta-tls.example 14155550100 2000/0 1415
        alpha: dropped: lacks capability tls
        beta: kept: rank 1
        |  beta/beta-tls: kept: rank 1
        |  beta/beta-udp: dropped: gateway transport is not TLS
        gamma: dropped: lacks capability srtp
        ",
    );
}

#[test]
fn emergency_calls_waive_tenant_restrictions_but_prefer_compliant_routes() {
    let mut world = World::new(Strategy::LeastCost);
    world.destination = Normalized::Emergency {
        code: "911".to_owned(),
        routing_digits: "1911".to_owned(),
    };
    world
        .carrier("alpha", &[Capability::Tls, Capability::Emergency], 0, 0)
        .gateway("alpha", "alpha-udp", 0, 1)
        .gateway("alpha", "alpha-tls", 5, 1)
        .carrier("beta", &[Capability::Emergency], 0, 0)
        .gateway("beta", "beta-udp", 0, 1)
        .carrier("gamma", &[Capability::Tls, Capability::Emergency], 0, 0)
        .gateway("gamma", "gamma-tls", 0, 1)
        .carrier("delta", &[Capability::Tls, Capability::Emergency], 0, 0)
        .gateway("delta", "delta-tls", 0, 1);
    world.gateway_mut("alpha-tls").uri = SipUri::parse("sips:alpha-tls.example").unwrap();
    world.gateway_mut("gamma-tls").uri = SipUri::parse("sips:gamma-tls.example").unwrap();
    world.gateway_mut("delta-tls").uri = SipUri::parse("sips:delta-tls.example").unwrap();
    world
        .health
        .insert("delta-tls".to_owned(), GatewayHealth::Down);
    world.tenant.allowed_carriers = vec!["alpha".to_owned(), "beta".to_owned(), "delta".to_owned()];
    world.tenant.required_capabilities = BTreeSet::from([Capability::Tls]);
    check(
        &world,
        "
        1. alpha alpha-tls sips:alpha-tls.example 911 0/0 1911
        2. alpha alpha-udp sip:alpha-udp.example 911 0/0 1911
        3. beta beta-udp sip:beta-udp.example 911 0/0 1911
        4. gamma gamma-tls sips:gamma-tls.example 911 0/0 1911
        alpha: kept: rank 1
        |  alpha/alpha-tls: kept: rank 1
        |  alpha/alpha-udp: kept for emergency: rank 2 (gateway transport is not TLS waived)
        beta: kept for emergency: rank 2 (lacks capability tls waived)
        |  beta/beta-udp: kept for emergency: rank 3 (gateway transport is not TLS waived)
        delta: dropped: no usable gateway
        |  delta/delta-tls: dropped: gateway down
        gamma: kept for emergency: rank 3 (not allowed for the tenant waived)
        |  gamma/gamma-tls: kept: rank 4
        ",
    );
    // The same configuration for an ordinary call keeps only the compliant route.
    world.destination = Normalized::E164(E164Number::new("14155550100").unwrap());
    for rate in &mut world.rates {
        rate.1 = "1415".to_owned();
    }
    let legs: Vec<String> = world
        .decide(1)
        .legs
        .into_iter()
        .map(|leg| leg.gateway)
        .collect();
    assert_eq!(legs, ["alpha-tls"]);
}

#[test]
fn excluded_carriers_and_extensions_get_no_legs() {
    let mut world = World::new(Strategy::LeastCost);
    world
        .carrier("alpha", &[], 1_000, 0)
        .gateway("alpha", "alpha-1", 0, 1)
        .carrier("beta", &[], 2_000, 0)
        .gateway("beta", "beta-1", 0, 1);
    world.excluded.insert("alpha".to_owned());
    check(
        &world,
        "
        1. beta beta-1 sip:beta-1.example 14155550100 2000/0 1415
        alpha: dropped: already tried in this call
        beta: kept: rank 1
        |  beta/beta-1: kept: rank 1
        ",
    );
    world.destination = Normalized::Extension("2001".to_owned());
    assert_eq!(world.decide(1), Outcome::default());
}

#[test]
fn emergency_calls_go_to_emergency_capable_carriers_as_dialled() {
    for code in ["911", "933"] {
        let mut world = World::new(Strategy::LeastCost);
        world.destination = Normalized::Emergency {
            code: code.to_owned(),
            routing_digits: format!("1{code}"),
        };
        world
            .carrier("alpha", &[Capability::Emergency], 500, 0)
            .gateway("alpha", "alpha-1", 0, 1)
            .carrier("beta", &[], 0, 0)
            .gateway("beta", "beta-1", 0, 1)
            .carrier("gamma", &[Capability::Emergency], 0, 0)
            .gateway("gamma", "gamma-1", 0, 1);
        // The translations would mangle the code; an emergency call is sent as dialled.
        world.carrier_mut("alpha").translation = Translation {
            strip_digits: 0,
            tech_prefix: "0101".to_owned(),
            plus: true,
        };
        // gamma's deck has no row for the code: routed at no charge.
        world.rates.retain(|(carrier, ..)| carrier != "gamma");
        check(
            &world,
            &format!(
                "
                1. gamma gamma-1 sip:gamma-1.example {code} 0/0 -
                2. alpha alpha-1 sip:alpha-1.example {code} 500/0 1{code}
                alpha: kept: rank 2
                |  alpha/alpha-1: kept: rank 2
                beta: dropped: lacks capability emergency
                gamma: kept: rank 1
                |  gamma/gamma-1: kept: rank 1
                "
            ),
        );
    }
}

#[test]
fn each_carrier_gets_its_own_dial_string() {
    let mut world = World::new(Strategy::LeastCost);
    world
        .carrier("alpha", &[], 1_000, 0)
        .gateway("alpha", "alpha-1", 0, 1)
        .carrier("beta", &[], 2_000, 0)
        .gateway("beta", "beta-1", 0, 1)
        .carrier("gamma", &[], 3_000, 0)
        .gateway("gamma", "gamma-1", 0, 1)
        .carrier("delta", &[], 4_000, 0)
        .gateway("delta", "delta-1", 0, 1);
    world.carrier_mut("alpha").translation = Translation {
        strip_digits: 1,
        tech_prefix: "0101".to_owned(),
        plus: false,
    };
    world.carrier_mut("beta").translation = Translation {
        strip_digits: 0,
        tech_prefix: String::new(),
        plus: true,
    };
    world.carrier_mut("gamma").translation = Translation {
        strip_digits: 11,
        tech_prefix: String::new(),
        plus: false,
    };
    check(
        &world,
        "
        1. alpha alpha-1 sip:alpha-1.example 01014155550100 1000/0 1415
        2. beta beta-1 sip:beta-1.example +14155550100 2000/0 1415
        3. delta delta-1 sip:delta-1.example 14155550100 4000/0 1415
        alpha: kept: rank 1
        |  alpha/alpha-1: kept: rank 1
        beta: kept: rank 2
        |  beta/beta-1: kept: rank 2
        delta: kept: rank 3
        |  delta/delta-1: kept: rank 3
        gamma: dropped: translation strips every digit
        ",
    );
}

#[test]
fn standby_gateways_come_after_weighted_peers() {
    let mut world = World::new(Strategy::LeastCost);
    world
        .carrier("alpha", &[], 1_000, 0)
        .gateway("alpha", "a-standby", 0, 0)
        .gateway("alpha", "b-main", 0, 1)
        .gateway("alpha", "c-main", 0, 1)
        .gateway("alpha", "d-backup", 1, 5);
    for seed in 0..200 {
        let legs: Vec<String> = world
            .decide(seed)
            .legs
            .into_iter()
            .map(|leg| leg.gateway)
            .collect();
        assert_eq!(legs.len(), 4);
        assert!(legs[..2].contains(&"b-main".to_owned()), "{legs:?}");
        assert!(legs[..2].contains(&"c-main".to_owned()), "{legs:?}");
        assert_eq!(legs[2..], ["a-standby", "d-backup"], "seed {seed}");
    }
}

/// Pearson's chi-square statistic of observed counts against expected shares.
fn chi_square(observed: &[u64], weights: &[u64]) -> f64 {
    let total: u64 = observed.iter().sum();
    let weight_total: u64 = weights.iter().sum();
    observed
        .iter()
        .zip(weights)
        .map(|(observed, weight)| {
            let expected = total as f64 * *weight as f64 / weight_total as f64;
            (*observed as f64 - expected).powi(2) / expected
        })
        .sum()
}

/// Critical chi-square values at p = 0.001 for 2 and 3 degrees of freedom. The draws are
/// seeded, so the test is deterministic; the bound only says the seed is not special.
const CHI_SQUARE_2_DEGREES: f64 = 13.82;
const CHI_SQUARE_3_DEGREES: f64 = 16.27;
const DRAWS: u64 = 20_000;

#[test]
fn weighted_carriers_are_first_in_proportion_to_their_gateway_weights() {
    let mut world = World::new(Strategy::Weighted);
    world
        .carrier("alpha", &[], 1_000, 0)
        .gateway("alpha", "alpha-1", 0, 1)
        .carrier("beta", &[], 1_000, 0)
        .gateway("beta", "beta-1", 0, 1)
        .gateway("beta", "beta-2", 0, 2)
        .gateway("beta", "beta-3", 1, 100)
        .carrier("gamma", &[], 1_000, 0)
        .gateway("gamma", "gamma-1", 0, 6)
        .carrier("delta", &[], 1_000, 0)
        .gateway("delta", "delta-1", 1, 100)
        .carrier("epsilon", &[], 1_000, 0)
        .gateway("epsilon", "epsilon-1", 0, 0);
    let names = ["alpha", "beta", "gamma"];
    let mut first = [0_u64; 3];
    let mut rng = SmallRng::seed_from_u64(42);
    let rates: Vec<RateMatch<'_>> = world
        .rates
        .iter()
        .map(|(carrier, prefix, rate, fee)| RateMatch {
            carrier,
            prefix,
            rate_micros_per_minute: *rate,
            connect_fee_micros: *fee,
        })
        .collect();
    let input = RouteInput {
        tenant: &world.tenant,
        destination: &world.destination,
        carriers: &world.carriers,
        gateways: &world.gateways,
        health: &world.health,
        concurrent_calls: None,
        rates: &rates,
        media: Media::Voice,
        excluded_carriers: &world.excluded,
        explain: false,
    };
    for _ in 0..DRAWS {
        let decision = select_route(&input, &mut rng);
        let carriers: Vec<&str> = decision
            .legs
            .iter()
            .map(|leg| leg.carrier.name.as_str())
            .collect();
        // Priority 0 carriers (by best gateway) first, the standby among them last, then delta.
        assert_eq!(carriers.len(), 7);
        assert_eq!(carriers[5..], ["epsilon", "delta"]);
        let position = names.iter().position(|name| *name == carriers[0]).unwrap();
        first[position] += 1;
    }
    // alpha weighs 1, beta 1 + 2 (its priority-0 gateways), gamma 6.
    let statistic = chi_square(&first, &[1, 3, 6]);
    assert!(
        statistic < CHI_SQUARE_2_DEGREES,
        "{first:?}: chi-square {statistic}"
    );
}

#[test]
fn weighted_gateways_are_first_in_proportion_to_their_weights() {
    let mut world = World::new(Strategy::LeastCost);
    world
        .carrier("alpha", &[], 1_000, 0)
        .gateway("alpha", "alpha-1", 0, 1)
        .gateway("alpha", "alpha-2", 0, 1)
        .gateway("alpha", "alpha-3", 0, 2)
        .gateway("alpha", "alpha-4", 0, 4);
    let mut first = [0_u64; 4];
    for seed in 0..DRAWS {
        let decision = world.decide(seed);
        let gateway = &decision.legs[0].gateway;
        let position = ["alpha-1", "alpha-2", "alpha-3", "alpha-4"]
            .iter()
            .position(|name| name == gateway)
            .unwrap();
        first[position] += 1;
    }
    let statistic = chi_square(&first, &[1, 1, 2, 4]);
    assert!(
        statistic < CHI_SQUARE_3_DEGREES,
        "{first:?}: chi-square {statistic}"
    );
}

mod properties {
    use proptest::prelude::{
        any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig,
    };
    use proptest::strategy::Strategy as ValueStrategy;

    use super::*;
    use crate::routing::Transport;

    const CAPABILITIES: [Capability; 4] = [
        Capability::T38,
        Capability::Tls,
        Capability::Srtp,
        Capability::Emergency,
    ];

    fn capability_set(mask: u8) -> BTreeSet<Capability> {
        CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, capability)| *capability)
            .collect()
    }

    #[derive(Clone, Debug)]
    struct GatewayPlan {
        enabled: bool,
        health: u8,
        priority: u32,
        weight: u32,
        limit: Option<u32>,
        calls: u32,
        transport: u8,
    }

    #[derive(Clone, Debug)]
    struct CarrierPlan {
        enabled: bool,
        capabilities: u8,
        strip_digits: u8,
        tech_prefix: bool,
        plus: bool,
        rate: Option<(u64, u64)>,
        gateways: Vec<GatewayPlan>,
    }

    fn gateway_plan() -> impl ValueStrategy<Value = GatewayPlan> {
        (
            prop::bool::weighted(0.85),
            prop_oneof![6 => Just(0_u8), 1 => Just(1_u8), 1 => Just(2_u8)],
            0..3_u32,
            0..4_u32,
            prop::option::of(1..3_u32),
            0..4_u32,
            0..3_u8,
        )
            .prop_map(
                |(enabled, health, priority, weight, limit, calls, transport)| GatewayPlan {
                    enabled,
                    health,
                    priority,
                    weight,
                    limit,
                    calls,
                    transport,
                },
            )
    }

    fn carrier_plan() -> impl ValueStrategy<Value = CarrierPlan> {
        (
            prop::bool::weighted(0.85),
            0..16_u8,
            prop_oneof![4 => Just(0_u8), 1 => Just(1_u8), 1 => Just(12_u8)],
            any::<bool>(),
            any::<bool>(),
            prop::option::weighted(0.85, (0..4_u64, 0..3_u64)),
            prop::collection::vec(gateway_plan(), 0..4),
        )
            .prop_map(
                |(enabled, capabilities, strip_digits, tech_prefix, plus, rate, gateways)| {
                    CarrierPlan {
                        enabled,
                        capabilities,
                        strip_digits,
                        tech_prefix,
                        plus: plus && strip_digits == 0,
                        rate: rate.map(|(rate, fee)| (rate * 1_000, fee * 10)),
                        gateways,
                    }
                },
            )
    }

    fn world() -> impl ValueStrategy<Value = World> {
        (
            prop::collection::vec(carrier_plan(), 1..6),
            0..3_u8,
            prop::collection::vec(any::<bool>(), 6),
            Just((0..6_usize).collect::<Vec<_>>()).prop_shuffle(),
            prop_oneof![3 => Just(0_u8), 1 => 0..8_u8],
            any::<bool>(),
            prop::collection::vec(prop::bool::weighted(0.2), 6),
            prop::bool::weighted(0.15),
            any::<bool>(),
        )
            .prop_map(
                |(
                    plans,
                    strategy,
                    allowed_mask,
                    order,
                    required,
                    fax,
                    excluded_mask,
                    emergency,
                    restrict,
                )| {
                    let strategy = [Strategy::LeastCost, Strategy::Priority, Strategy::Weighted]
                        [usize::from(strategy)];
                    let mut world = World::new(strategy);
                    if emergency {
                        world.destination = Normalized::Emergency {
                            code: "911".to_owned(),
                            routing_digits: "1911".to_owned(),
                        };
                    }
                    let digits = world.destination.routing_digits().unwrap().to_owned();
                    let mut calls = BTreeMap::new();
                    for (number, plan) in plans.iter().enumerate() {
                        let name = format!("c{number}");
                        world.carriers.push(Carrier {
                            name: name.clone(),
                            capabilities: capability_set(plan.capabilities),
                            translation: Translation {
                                strip_digits: plan.strip_digits,
                                tech_prefix: if plan.tech_prefix {
                                    "99#".to_owned()
                                } else {
                                    String::new()
                                },
                                plus: plan.plus,
                            },
                            final_codes: BTreeSet::new(),
                            enabled: plan.enabled,
                        });
                        if let Some((rate, fee)) = plan.rate {
                            world
                                .rates
                                .push((name.clone(), digits[..2].to_owned(), rate, fee));
                        }
                        for (gateway_number, gateway) in plan.gateways.iter().enumerate() {
                            let gateway_name = format!("{name}-g{gateway_number}");
                            let uri = match gateway.transport {
                                0 => format!("sip:{gateway_name}.example"),
                                1 => format!("sip:{gateway_name}.example;transport=tcp"),
                                _ => format!("sips:{gateway_name}.example"),
                            };
                            world.gateways.push(Gateway {
                                name: gateway_name.clone(),
                                carrier: name.clone(),
                                uri: SipUri::parse(&uri).unwrap(),
                                priority: gateway.priority,
                                weight: gateway.weight,
                                max_concurrent_calls: gateway.limit,
                                enabled: gateway.enabled,
                                probe: Default::default(),
                            });
                            match gateway.health {
                                0 => {}
                                1 => {
                                    world
                                        .health
                                        .insert(gateway_name.clone(), GatewayHealth::Down);
                                }
                                _ => {
                                    world
                                        .health
                                        .insert(gateway_name.clone(), GatewayHealth::Drained);
                                }
                            }
                            calls.insert(gateway_name, gateway.calls);
                        }
                        if excluded_mask[number] {
                            world.excluded.insert(name);
                        }
                    }
                    if restrict {
                        world.tenant.allowed_carriers = order
                            .into_iter()
                            .filter(|number| *number < plans.len() && allowed_mask[*number])
                            .map(|number| format!("c{number}"))
                            .collect();
                    }
                    world.tenant.required_capabilities = capability_set(required & 0b110);
                    world.media = if fax { Media::Fax } else { Media::Voice };
                    world.concurrent_calls = Some(calls);
                    world
                },
            )
    }

    /// Whether a gateway may carry the call, straight from the rules, ignoring order.
    fn usable(world: &World, carrier: &Carrier, gateway: &Gateway) -> bool {
        let emergency = world.destination.is_emergency();
        let digits = world.destination.routing_digits().unwrap();
        let tenant = &world.tenant;
        let restrictions_met = tenant.allows_carrier(&carrier.name)
            && tenant
                .required_capabilities
                .is_subset(&carrier.capabilities)
            && (!tenant.required_capabilities.contains(&Capability::Tls)
                || gateway.uri.transport() == Transport::Tls);
        let calls = world
            .concurrent_calls
            .as_ref()
            .and_then(|calls| calls.get(&gateway.name));
        // An emergency call needs the emergency capability, not a deck row or digits left
        // after the translation (the code is sent as dialled).
        let reachable = if emergency {
            carrier.capabilities.contains(&Capability::Emergency)
        } else {
            world.rates.iter().any(|(name, ..)| *name == carrier.name)
                && usize::from(carrier.translation.strip_digits) < digits.len()
        };
        carrier.enabled
            && !world.excluded.contains(&carrier.name)
            && (world.media == Media::Voice || carrier.capabilities.contains(&Capability::T38))
            && reachable
            && (restrictions_met || emergency)
            && gateway.enabled
            && world
                .health
                .get(&gateway.name)
                .is_none_or(|health| *health == GatewayHealth::Up)
            && gateway
                .max_concurrent_calls
                .is_none_or(|limit| calls.is_none_or(|calls| *calls < limit))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn selection_keeps_its_promises(world in world(), seed in any::<u64>()) {
            let decision = world.decide(seed);
            let carrier = |name: &str| world.carriers.iter().find(|carrier| carrier.name == name).unwrap();
            let gateway = |name: &str| world.gateways.iter().find(|gateway| gateway.name == name).unwrap();

            // Never a disabled, down or drained gateway, nor an excluded carrier.
            for leg in &decision.legs {
                let gateway = gateway(&leg.gateway);
                prop_assert!(gateway.enabled, "disabled gateway {}", leg.gateway);
                prop_assert_eq!(world.health.get(&leg.gateway).copied().unwrap_or_default(), GatewayHealth::Up);
                prop_assert!(!world.excluded.contains(&leg.carrier), "excluded carrier {}", leg.carrier);
                prop_assert_eq!(&gateway.carrier, &leg.carrier);
                prop_assert_eq!(&leg.uri, &gateway.uri.to_string());
            }

            // Exactly the usable gateways, each once.
            let offered: BTreeSet<&str> = decision.legs.iter().map(|leg| leg.gateway.as_str()).collect();
            prop_assert_eq!(offered.len(), decision.legs.len(), "a gateway offered twice");
            let expected: BTreeSet<&str> = world
                .gateways
                .iter()
                .filter(|gateway| world.carriers.iter().any(|carrier| {
                    carrier.name == gateway.carrier && usable(&world, carrier, gateway)
                }))
                .map(|gateway| gateway.name.as_str())
                .collect();
            prop_assert_eq!(offered, expected);

            // A carrier's legs are together, its gateways by priority unless a waiver reorders them.
            let mut seen = Vec::<&str>::new();
            for leg in &decision.legs {
                if seen.last() != Some(&leg.carrier.as_str()) {
                    prop_assert!(!seen.contains(&leg.carrier.as_str()), "carrier {} split", leg.carrier);
                    seen.push(&leg.carrier);
                }
            }
            if !world.destination.is_emergency() {
                for pair in decision.legs.windows(2) {
                    if pair[0].carrier == pair[1].carrier {
                        prop_assert!(gateway(&pair[0].gateway).priority <= gateway(&pair[1].gateway).priority);
                    }
                }
            }

            // Each carrier's dial string is its translation of the number (an emergency code as
            // dialled), and its rate is its own (none for an emergency call its deck lacks).
            let digits = world.destination.routing_digits().unwrap();
            for leg in &decision.legs {
                let translation = &carrier(&leg.carrier).translation;
                let expected = match &world.destination {
                    Normalized::Emergency { code, .. } => code.clone(),
                    _ => format!(
                        "{}{}{}",
                        translation.tech_prefix,
                        if translation.plus { "+" } else { "" },
                        &digits[usize::from(translation.strip_digits)..]
                    ),
                };
                prop_assert_eq!(&leg.dial_string, &expected);
                let rate = world
                    .rates
                    .iter()
                    .find(|(name, ..)| *name == leg.carrier)
                    .map_or((String::new(), 0, 0), |(_, prefix, rate, fee)| (prefix.clone(), *rate, *fee));
                prop_assert_eq!((leg.prefix.clone(), leg.rate_micros_per_minute, leg.connect_fee_micros), rate);
            }

            // Strategy order, for calls without emergency waivers.
            if !world.destination.is_emergency() {
                match world.tenant.strategy {
                    Strategy::LeastCost => {
                        for pair in decision.legs.windows(2) {
                            prop_assert!(
                                (pair[0].rate_micros_per_minute, pair[0].connect_fee_micros)
                                    <= (pair[1].rate_micros_per_minute, pair[1].connect_fee_micros),
                                "least cost out of order: {:?}", decision.legs
                            );
                        }
                    }
                    Strategy::Priority if !world.tenant.allowed_carriers.is_empty() => {
                        let positions: Vec<usize> = seen
                            .iter()
                            .map(|name| world.tenant.allowed_carriers.iter().position(|allowed| allowed == name).unwrap())
                            .collect();
                        prop_assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{:?}", seen);
                    }
                    _ => {
                        // Carriers by their best gateway's priority.
                        let best: Vec<u32> = seen
                            .iter()
                            .map(|name| decision.legs.iter().find(|leg| leg.carrier == *name).map(|leg| gateway(&leg.gateway).priority).unwrap())
                            .collect();
                        if world.tenant.strategy == Strategy::Weighted || world.tenant.allowed_carriers.is_empty() {
                            prop_assert!(best.windows(2).all(|pair| pair[0] <= pair[1]), "{:?}", best);
                        }
                    }
                }
            }

            // The explanation names every carrier once, with ranks matching the legs.
            let carrier_lines: Vec<_> = decision.explanation.iter().filter(|candidate| candidate.gateway.is_none()).collect();
            prop_assert_eq!(carrier_lines.len(), world.carriers.len());
            for candidate in carrier_lines {
                match candidate.verdict {
                    Verdict::Kept { rank } | Verdict::KeptForEmergency { rank, .. } => {
                        prop_assert_eq!(seen.get(rank - 1).copied(), Some(candidate.carrier.as_str()));
                    }
                    Verdict::Dropped(_) => prop_assert!(!seen.contains(&candidate.carrier.as_str())),
                }
            }
            for candidate in decision.explanation.iter().filter(|candidate| candidate.gateway.is_some()) {
                let name = candidate.gateway.as_deref().unwrap();
                match candidate.verdict {
                    Verdict::Kept { rank } | Verdict::KeptForEmergency { rank, .. } => {
                        prop_assert_eq!(decision.legs.get(rank - 1).map(|leg| leg.gateway.as_str()), Some(name));
                    }
                    Verdict::Dropped(_) => prop_assert!(!decision.legs.iter().any(|leg| leg.gateway == name)),
                }
            }
        }

        #[test]
        fn selection_depends_on_configuration_and_seed_only(world in world(), seed in any::<u64>()) {
            let decision = world.decide(seed);
            prop_assert_eq!(&world.decide(seed), &decision);
            let mut carriers = world.carriers.clone();
            carriers.reverse();
            let mut gateways = world.gateways.clone();
            gateways.reverse();
            prop_assert_eq!(&world.decide_with(seed, &carriers, &gateways), &decision);
        }
    }
}
