//! Tests of the breaker's half-open state: which calls are trials, and how a trial's report
//! moves the breaker (an answer closes it before the cool-down, a failure keeps it open).

use crate::health::{
    is_breaker_trial, BreakerPolicy, BreakerState, CircuitBreaker, LegOutcome, Liveness,
    MAX_TRIAL_ONE_IN,
};

fn answer(status_code: u16) -> LegOutcome {
    LegOutcome::Answer { status_code }
}

/// Opens on 3 failures in a row; cool-down 30 s, trials from 5 s on.
fn policy() -> BreakerPolicy {
    BreakerPolicy {
        consecutive_failures_to_open: 3,
        cool_down_ms: 30_000,
        trial_after_ms: 5_000,
        trial_one_in: 10,
        ..BreakerPolicy::default()
    }
}

fn opened_at_3(policy: BreakerPolicy) -> CircuitBreaker {
    let mut breaker = CircuitBreaker::new(policy);
    for at_ms in 1..=3 {
        breaker.record_leg(answer(503), at_ms);
    }
    assert_eq!(breaker.state(), BreakerState::Open { opened_at_ms: 3 });
    breaker
}

#[test]
fn a_trial_that_answers_closes_the_breaker_before_the_cool_down() {
    let mut breaker = opened_at_3(policy());
    // Before trial_after_ms: not half-open; even an answer is a call from before the opening.
    assert!(!breaker.admits_trials(5_002));
    assert_eq!(breaker.record_trial(answer(200), 1_000), None);
    assert!(breaker.is_open());
    assert!(breaker.admits_trials(5_003));

    // A failed trial keeps it open, and the cool-down still runs from the opening.
    assert_eq!(breaker.record_trial(answer(503), 6_000), None);
    assert_eq!(
        breaker.record_trial(LegOutcome::TransportFailure, 6_500),
        None
    );
    assert_eq!(breaker.state(), BreakerState::Open { opened_at_ms: 3 });

    // The callee's refusal shows the gateway working just as an answer does.
    let closed = breaker
        .record_trial(answer(486), 7_000)
        .expect("a working trial closes it");
    assert_eq!(
        (closed.from, closed.to, closed.at_ms),
        (Liveness::Down, Liveness::Up, 7_000)
    );
    assert_eq!(
        closed.reason,
        "breaker closed: a trial call through it ended 486"
    );
    assert_eq!(breaker.state(), BreakerState::Closed);
    // Closed afresh: the failures before the opening are forgotten, and trials are over.
    assert!(!breaker.admits_trials(7_001));
    assert_eq!(breaker.record_trial(answer(200), 7_001), None);
    assert_eq!(breaker.record_leg(answer(503), 7_002), None);
    assert_eq!(breaker.record_leg(answer(503), 7_003), None);
    assert!(breaker.record_leg(answer(503), 7_004).is_some());
}

#[test]
fn trials_continue_while_the_probes_decide_and_a_breaker_opened_elsewhere_takes_them() {
    let mut breaker = CircuitBreaker::opened_at(policy(), 100_000);
    assert!(!breaker.admits_trials(104_999));
    breaker.poll(130_000);
    assert_eq!(
        breaker.state(),
        BreakerState::ProbeDecides { probe_successes: 0 }
    );
    assert!(breaker.admits_trials(130_000));
    assert_eq!(breaker.record_trial(answer(408), 130_100), None);
    assert!(breaker.record_trial(answer(200), 130_200).is_some());
    assert!(!breaker.is_open());
}

#[test]
fn with_trials_off_only_the_probes_close_it() {
    let mut breaker = opened_at_3(BreakerPolicy {
        trial_one_in: 0,
        ..policy()
    });
    assert!(!breaker.admits_trials(20_000));
    assert_eq!(breaker.record_trial(answer(200), 20_000), None);
    assert!(breaker.is_open());
    assert!(!is_breaker_trial(
        &BreakerPolicy {
            trial_one_in: 0,
            ..policy()
        },
        0,
        1_000_000,
        7,
        "gw"
    ));
}

#[test]
fn about_one_call_in_n_is_a_trial_the_same_on_every_node_and_only_after_the_delay() {
    let policy = policy();
    let trials = |gateway: &str, now_ms: u64| -> Vec<u64> {
        (0..10_000u64)
            .filter(|call| is_breaker_trial(&policy, 1_000, now_ms, *call, gateway))
            .collect()
    };
    assert!(trials("gw-a", 5_999).is_empty(), "before trial_after_ms");
    let sampled = trials("gw-a", 6_000);
    assert!(
        (800..=1_200).contains(&sampled.len()),
        "{} of 10000 calls sampled, expected about 1000",
        sampled.len()
    );
    // A pure function of its inputs: another node computes the same sample.
    assert_eq!(sampled, trials("gw-a", 60_000));
    // Another gateway's trials fall on other calls.
    let other = trials("gw-b", 6_000);
    let shared = sampled.iter().filter(|call| other.contains(call)).count();
    assert!(shared < sampled.len() / 4, "{shared} calls shared");
}

#[test]
fn trial_settings_are_validated() {
    let refused = |policy: BreakerPolicy| policy.validate().unwrap_err().field().to_owned();
    assert_eq!(
        refused(BreakerPolicy {
            trial_after_ms: 30_001,
            ..policy()
        }),
        "trial_after_ms"
    );
    assert_eq!(
        refused(BreakerPolicy {
            trial_one_in: MAX_TRIAL_ONE_IN + 1,
            ..policy()
        }),
        "trial_one_in"
    );
    for valid in [
        BreakerPolicy {
            trial_one_in: 0,
            ..policy()
        },
        BreakerPolicy {
            trial_after_ms: 30_000,
            trial_one_in: 1,
            ..policy()
        },
        BreakerPolicy::default(),
    ] {
        assert_eq!(valid.validate(), Ok(()), "{valid:?}");
    }
}
