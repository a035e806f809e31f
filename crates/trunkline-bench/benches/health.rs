//! The health path's costs: one probe result through the tracker, one leg report through the
//! breaker, one OPTIONS built and its reply parsed and matched, and one replicated transition
//! applied to a state with 10,000 gateways and a full event log (the apply path copies the
//! health table and the event log, because readers hold the previous state).
//!
//! Run: `cargo bench -p trunkline-bench --bench health`.

// A benchmark that cannot set up its inputs has nothing to measure: failing loudly with the
// reason is the right answer, so `expect` is allowed here.
#![allow(clippy::expect_used)]

use std::{collections::BTreeSet, hint::black_box, net::SocketAddr, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{rngs::SmallRng, SeedableRng};
use trunkline_core::{
    health::{
        BreakerPolicy, CircuitBreaker, HealthCommand, LegOutcome, Liveness, ProbeOverrides,
        ProbePolicy, ProbeResult, ProbeTracker, TransitionSource,
    },
    routing::{Carrier, Gateway, RoutingCommand, SipUri, Translation},
    sip::{matches, parse_response, OptionsRequest},
    Command, Request, State,
};

const GATEWAYS: usize = 10_000;

fn state_with_gateways() -> State {
    let mut state = State::default();
    let mut index = 0;
    let mut apply = |state: &mut State, command: Command| {
        index += 1;
        state.apply(
            index,
            &Request {
                idempotency: None,
                time_ms: 1_000 + index,
                actor: None,
                command,
            },
        );
    };
    let carrier = Carrier {
        name: "alpha".to_owned(),
        capabilities: BTreeSet::new(),
        translation: Translation {
            strip_digits: 0,
            tech_prefix: String::new(),
            plus: true,
        },
        final_codes: BTreeSet::new(),
        enabled: true,
    };
    apply(
        &mut state,
        Command::Routing(RoutingCommand::PutCarrier {
            carrier,
            mode: Default::default(),
        }),
    );
    for gateway in 0..GATEWAYS {
        let gateway = Gateway {
            name: format!("gw-{gateway}"),
            carrier: "alpha".to_owned(),
            uri: SipUri::parse("sip:192.0.2.1").expect("a valid URI"),
            priority: 1,
            weight: 1,
            max_concurrent_calls: None,
            enabled: true,
            probe: ProbeOverrides::default(),
        };
        apply(
            &mut state,
            Command::Routing(RoutingCommand::PutGateway {
                gateway,
                mode: Default::default(),
            }),
        );
    }
    // Fill the event log and give every gateway a history.
    for round in 0..2 {
        for gateway in 0..GATEWAYS {
            let (from, to) = if round == 0 {
                (Liveness::Up, Liveness::Down)
            } else {
                (Liveness::Down, Liveness::Up)
            };
            apply(&mut state, transition(&format!("gw-{gateway}"), from, to));
        }
    }
    state
}

fn transition(gateway: &str, from: Liveness, to: Liveness) -> Command {
    Command::Health(HealthCommand::Transition {
        gateway: gateway.to_owned(),
        observer_node: 1,
        from,
        to,
        reason: "3 consecutive timeouts".to_owned(),
        source: TransitionSource::Probe,
        round_trip_ms: Some(12),
    })
}

fn health(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("health");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let mut tracker = ProbeTracker::new(ProbePolicy::default(), Liveness::Up, 0);
    let mut now_ms = 0;
    group.bench_function("probe_result", |bencher| {
        bencher.iter(|| {
            now_ms += 2_000;
            let result = if now_ms % 6_000 == 0 {
                ProbeResult::Timeout
            } else {
                ProbeResult::Reply {
                    status_code: 200,
                    round_trip_ms: 12,
                }
            };
            tracker.record(black_box(result), now_ms)
        })
    });

    let mut breaker = CircuitBreaker::new(BreakerPolicy::default());
    let mut now_ms = 0;
    group.bench_function("breaker_leg", |bencher| {
        bencher.iter(|| {
            now_ms += 10;
            let status_code = if now_ms % 70 == 0 { 503 } else { 200 };
            breaker.record_leg(black_box(LegOutcome::Answer { status_code }), now_ms)
        })
    });

    let target = SipUri::parse("sip:gw1.carrier.example:5060").expect("a valid URI");
    let local: SocketAddr = "10.0.0.11:5060".parse().expect("a valid address");
    let mut rng = SmallRng::seed_from_u64(7);
    group.bench_function("options_build_parse_match", |bencher| {
        bencher.iter(|| {
            let request = OptionsRequest::new(&target, local, 1, &mut rng);
            let bytes = request.to_bytes();
            let parsed = trunkline_core::sip::parse_message(&bytes).expect("our own request");
            let trunkline_core::sip::Message::Request(parsed) = parsed else {
                panic!("a request")
            };
            let reply = trunkline_core::sip::build_response(&parsed, 200, "OK", "t1");
            let response = parse_response(&reply).expect("a valid reply");
            matches(&request, &response)
        })
    });

    let state = state_with_gateways();
    let mut index = 10_000_000;
    group.bench_function("apply_transition_10k_gateways", |bencher| {
        bencher.iter(|| {
            // A reader holds the previous state, as on a node: apply copies what it changes.
            let mut next = state.clone();
            index += 1;
            let response = next.apply(
                index,
                &Request {
                    idempotency: None,
                    time_ms: index,
                    actor: None,
                    command: transition("gw-5000", Liveness::Up, Liveness::Down),
                },
            );
            assert!(
                matches!(response, trunkline_core::Response::Health(_)),
                "{response:?}"
            );
            black_box(next)
        })
    });
    group.finish();
}

criterion_group!(benches, health);
criterion_main!(benches);
