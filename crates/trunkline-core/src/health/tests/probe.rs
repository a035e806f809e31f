//! Golden tests of probe thresholds: one probe per second, each step's transition rendered.

use std::collections::BTreeSet;

use crate::health::{Liveness, ProbePolicy, ProbeResult, ProbeTracker, TransportErrorKind};

/// `"200"`/`"503"`: a reply; `"timeout"`; `"refused"`: a refused TCP connection.
fn result(step: &str) -> ProbeResult {
    match step {
        "timeout" => ProbeResult::Timeout,
        "refused" => ProbeResult::TransportError {
            kind: TransportErrorKind::ConnectionRefused,
        },
        code => ProbeResult::Reply {
            status_code: code.parse().expect("test step is a code"),
            round_trip_ms: 12,
        },
    }
}

/// Feeds `steps` one second apart from state `start`; expects the transitions, each as
/// "at_ms to: reason", joined by "; ".
#[track_caller]
fn check(policy: ProbePolicy, start: Liveness, steps: &[&str], expected: &str) {
    assert!(policy.validate().is_ok(), "test policy is invalid");
    let mut tracker = ProbeTracker::new(policy, start, 0);
    let transitions: Vec<String> = steps
        .iter()
        .enumerate()
        .filter_map(|(index, step)| {
            let now_ms = (index as u64 + 1) * 1_000;
            tracker.record(result(step), now_ms)
        })
        .map(|transition| {
            assert_ne!(transition.from, transition.to);
            format!(
                "{} {}: {}",
                transition.at_ms,
                transition.to.as_str(),
                transition.reason
            )
        })
        .collect();
    assert_eq!(transitions.join("; "), expected, "steps {steps:?}");
}

#[test]
fn a_silent_gateway_goes_down_after_the_threshold() {
    let up = Liveness::Up;
    check(ProbePolicy::default(), up, &["timeout", "timeout"], "");
    check(
        ProbePolicy::default(),
        up,
        &["200", "timeout", "timeout", "timeout", "timeout"],
        "4000 down: 3 consecutive timeouts",
    );
    check(
        ProbePolicy::default(),
        up,
        &["timeout", "timeout", "200", "timeout", "timeout"],
        "",
    );
}

#[test]
fn failure_reasons_name_what_failed() {
    let up = Liveness::Up;
    check(
        ProbePolicy::default(),
        up,
        &["503", "503", "503"],
        "3000 down: 503 x3",
    );
    check(
        ProbePolicy::default(),
        up,
        &["refused", "refused", "refused"],
        "3000 down: 3 consecutive transport errors (connection refused)",
    );
    check(
        ProbePolicy::default(),
        up,
        &["503", "timeout", "refused"],
        "3000 down: 3 consecutive failures, last connection refused",
    );
}

#[test]
fn a_408_is_never_alive_and_other_codes_fail_unless_listed() {
    let up = Liveness::Up;
    check(
        ProbePolicy::default(),
        up,
        &["408", "408", "408"],
        "3000 down: 408 x3",
    );
    check(
        ProbePolicy::default(),
        up,
        &["404", "404", "404"],
        "3000 down: 404 x3",
    );
    let lenient = ProbePolicy {
        alive_codes: BTreeSet::from([200, 404]),
        ..ProbePolicy::default()
    };
    check(lenient.clone(), up, &["404", "404", "404"], "");
    check(
        lenient,
        Liveness::Down,
        &["404", "200"],
        "2000 up: 2 alive replies after down",
    );
    let with_408 = ProbePolicy {
        alive_codes: BTreeSet::from([200, 408]),
        ..ProbePolicy::default()
    };
    assert!(with_408.validate().is_err());
    // Even a policy that slipped past validation never counts a 408 as alive.
    let mut tracker = ProbeTracker::new(with_408, Liveness::Down, 0);
    for now_ms in 1..=5 {
        assert_eq!(tracker.record(result("408"), now_ms), None);
    }
    assert_eq!(tracker.state(), Liveness::Down);
    assert_eq!(tracker.consecutive_successes(), 0);
}

#[test]
fn a_single_200_does_not_reinstate_a_down_gateway() {
    let down = Liveness::Down;
    check(ProbePolicy::default(), down, &["200"], "");
    check(
        ProbePolicy::default(),
        down,
        &["200", "timeout", "200", "503", "200"],
        "",
    );
    check(
        ProbePolicy::default(),
        down,
        &["200", "timeout", "200", "200", "200"],
        "4000 up: 200 x2 after down",
    );
}

#[test]
fn flapping_needs_full_streaks_both_ways() {
    check(
        ProbePolicy::default(),
        Liveness::Up,
        &[
            "timeout", "timeout", "timeout", "200", "200", "503", "503", "503", "200", "200",
        ],
        "3000 down: 3 consecutive timeouts; 5000 up: 200 x2 after down; \
         8000 down: 503 x3; 10000 up: 200 x2 after down",
    );
}

#[test]
fn provisional_replies_are_not_results_and_rtt_is_kept() {
    let mut tracker = ProbeTracker::new(ProbePolicy::default(), Liveness::Up, 0);
    let trying = ProbeResult::Reply {
        status_code: 100,
        round_trip_ms: 3,
    };
    for now_ms in 1..=5 {
        assert_eq!(tracker.record(trying, now_ms), None);
    }
    assert_eq!(tracker.consecutive_failures(), 0);
    assert_eq!(tracker.last_round_trip_ms(), None);
    tracker.record(ProbeResult::Timeout, 6);
    tracker.record(result("503"), 7);
    assert_eq!(tracker.consecutive_failures(), 2);
    assert_eq!(tracker.last_round_trip_ms(), Some(12));
    assert!(tracker.record(ProbeResult::Timeout, 8).is_some());
    assert_eq!(tracker.state(), Liveness::Down);
    assert_eq!(tracker.since_ms(), 8);
}

#[test]
fn policies_that_cannot_work_are_refused() {
    let check_invalid = |policy: ProbePolicy| assert!(policy.validate().is_err(), "{policy:?}");
    let base = ProbePolicy::default();
    check_invalid(ProbePolicy {
        interval_ms: 10,
        ..base.clone()
    });
    check_invalid(ProbePolicy {
        timeout_ms: base.interval_ms + 1,
        ..base.clone()
    });
    check_invalid(ProbePolicy {
        down_after: 0,
        ..base.clone()
    });
    check_invalid(ProbePolicy {
        up_after: 1_000,
        ..base.clone()
    });
    check_invalid(ProbePolicy {
        alive_codes: BTreeSet::new(),
        ..base.clone()
    });
    check_invalid(ProbePolicy {
        alive_codes: BTreeSet::from([180]),
        ..base.clone()
    });
    assert!(base.validate().is_ok());
    assert!(
        base.up_after >= 2,
        "one reply must not bring a gateway back by default"
    );
}
