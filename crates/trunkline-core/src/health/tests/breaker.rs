//! Golden tests of the circuit breaker: opening on consecutive failures or a ratio, ignoring
//! traffic while open, and closing only through probes after the cool-down.

use crate::health::{BreakerPolicy, BreakerState, CircuitBreaker, LegOutcome, Liveness};

/// `"200"`, `"486"`, `"503"`: answers; `"transport"`: a transport failure.
fn outcome(step: &str) -> LegOutcome {
    match step {
        "transport" => LegOutcome::TransportFailure,
        code => LegOutcome::Answer {
            status_code: code.parse().expect("test step is a code"),
        },
    }
}

/// Feeds `(at_ms, outcome)` reports; expects the opening transition as "at_ms: reason", or "".
#[track_caller]
fn check(policy: BreakerPolicy, reports: &[(u64, &str)], expected: &str) {
    assert!(policy.validate().is_ok(), "test policy is invalid");
    let mut breaker = CircuitBreaker::new(policy);
    let opened: Vec<String> = reports
        .iter()
        .filter_map(|(at_ms, step)| breaker.record_leg(outcome(step), *at_ms))
        .map(|transition| {
            assert_eq!(
                (transition.from, transition.to),
                (Liveness::Up, Liveness::Down)
            );
            format!("{}: {}", transition.at_ms, transition.reason)
        })
        .collect();
    assert_eq!(opened.join("; "), expected, "reports {reports:?}");
}

fn consecutive_only() -> BreakerPolicy {
    BreakerPolicy {
        consecutive_failures_to_open: 3,
        min_samples: 100_000,
        ..BreakerPolicy::default()
    }
}

fn ratio_only() -> BreakerPolicy {
    BreakerPolicy {
        consecutive_failures_to_open: 100,
        window_ms: 10_000,
        min_samples: 10,
        failure_ratio_percent: 50,
        ..BreakerPolicy::default()
    }
}

#[test]
fn consecutive_gateway_failures_open_it() {
    check(
        consecutive_only(),
        &[(1, "503"), (2, "408"), (3, "transport")],
        "3: breaker: 3 consecutive failed legs, last transport failure",
    );
    check(
        consecutive_only(),
        &[(1, "503"), (2, "503"), (3, "200"), (4, "503"), (5, "503")],
        "",
    );
}

#[test]
fn callee_answers_are_gateway_successes() {
    check(
        consecutive_only(),
        &[
            (1, "503"),
            (2, "503"),
            (3, "486"),
            (4, "503"),
            (5, "404"),
            (6, "500"),
            (7, "603"),
        ],
        "",
    );
    assert!(!LegOutcome::Answer { status_code: 500 }.is_gateway_failure());
    assert!(LegOutcome::Answer { status_code: 503 }.is_gateway_failure());
}

#[test]
fn a_failure_ratio_over_the_window_opens_it() {
    // Alternating success and failure: 50 % once 10 samples are in.
    let alternating: Vec<(u64, &str)> = (0..10)
        .map(|index| (index * 100, if index % 2 == 0 { "200" } else { "503" }))
        .collect();
    check(
        ratio_only(),
        &alternating,
        "900: breaker: 5 of 10 legs failed in 10000 ms",
    );
    check(ratio_only(), &alternating[..9], "");
    // One failure in three: under the ratio.
    let mostly_fine: Vec<(u64, &str)> = (0..30)
        .map(|index| (index * 100, if index % 3 == 0 { "503" } else { "200" }))
        .collect();
    check(ratio_only(), &mostly_fine, "");
}

#[test]
fn old_reports_slide_out_of_the_window() {
    // Eight failures long ago (bucket slot 0), then, in another slot, 4 failures in 10
    // (40 %): were the old ones still counted, the first new failure would make it 9 of 16.
    let mut reports: Vec<(u64, &str)> = (0..8).map(|index| (index, "503")).collect();
    reports.push((10, "200"));
    reports
        .extend((0..10).map(|index| (65_000 + index * 10, if index < 6 { "200" } else { "503" })));
    check(ratio_only(), &reports, "");
}

#[test]
fn open_breaker_ignores_traffic_and_only_probes_close_it_after_cool_down() {
    let policy = BreakerPolicy {
        cool_down_ms: 5_000,
        ..consecutive_only()
    };
    let mut breaker = CircuitBreaker::new(policy);
    for at_ms in 1..=3 {
        breaker.record_leg(outcome("503"), at_ms);
    }
    assert_eq!(breaker.state(), BreakerState::Open { opened_at_ms: 3 });
    // Failures while open are not new news: no second transition.
    for at_ms in 4..=9 {
        assert_eq!(breaker.record_leg(outcome("503"), at_ms), None);
    }
    // Success on call traffic does not close it, before or after the cool-down.
    for at_ms in 10..100 {
        assert_eq!(breaker.record_leg(outcome("200"), at_ms), None);
    }
    assert_eq!(
        breaker.record_probe(true, 4_000),
        None,
        "probes during cool-down don't count"
    );
    breaker.poll(5_003);
    assert_eq!(
        breaker.state(),
        BreakerState::ProbeDecides { probe_successes: 0 }
    );
    assert_eq!(breaker.record_leg(outcome("200"), 5_100), None);
    assert!(breaker.is_open());
    assert_eq!(breaker.record_probe(true, 6_000), None);
    assert_eq!(
        breaker.record_probe(false, 7_000),
        None,
        "a failed probe restarts the count"
    );
    assert_eq!(breaker.record_probe(true, 8_000), None);
    let closed = breaker
        .record_probe(true, 9_000)
        .expect("two alive probes close it");
    assert_eq!(
        (closed.from, closed.to, closed.at_ms),
        (Liveness::Down, Liveness::Up, 9_000)
    );
    assert_eq!(
        closed.reason,
        "breaker closed: 2 alive probes after cool-down"
    );
    assert!(!breaker.is_open());
    // Closed afresh: old failures are forgotten.
    assert_eq!(breaker.record_leg(outcome("503"), 9_001), None);
}

#[test]
fn invalid_breaker_policies_are_refused() {
    let check_invalid = |policy: BreakerPolicy| assert!(policy.validate().is_err(), "{policy:?}");
    let base = BreakerPolicy::default();
    check_invalid(BreakerPolicy {
        consecutive_failures_to_open: 0,
        ..base.clone()
    });
    check_invalid(BreakerPolicy {
        window_ms: 1,
        ..base.clone()
    });
    check_invalid(BreakerPolicy {
        min_samples: 0,
        ..base.clone()
    });
    check_invalid(BreakerPolicy {
        failure_ratio_percent: 0,
        ..base.clone()
    });
    check_invalid(BreakerPolicy {
        failure_ratio_percent: 101,
        ..base.clone()
    });
    check_invalid(BreakerPolicy {
        probe_successes_to_close: 0,
        ..base.clone()
    });
    assert!(base.validate().is_ok());
}

#[test]
fn a_breaker_opened_elsewhere_waits_the_cool_down_then_probes_close_it() {
    let policy = crate::health::BreakerPolicy {
        cool_down_ms: 1_000,
        probe_successes_to_close: 2,
        ..crate::health::BreakerPolicy::default()
    };
    let mut breaker = crate::health::CircuitBreaker::opened_at(policy, 10_000);
    assert!(breaker.is_open());
    assert_eq!(
        breaker.record_probe(true, 10_500),
        None,
        "still cooling down"
    );
    assert_eq!(breaker.record_probe(true, 10_600), None);
    assert_eq!(
        breaker.record_probe(true, 11_000),
        None,
        "first success counted"
    );
    let closed = breaker.record_probe(true, 11_100).expect("closes");
    assert_eq!(closed.to, crate::health::Liveness::Up);
    assert!(!breaker.is_open());
}
