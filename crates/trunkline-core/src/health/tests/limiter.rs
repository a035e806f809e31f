//! Golden tests of transition rate limiting: a flapping gateway publishes at most the budget,
//! is held down, and comes back only after a quiet window.

use crate::health::{
    LimiterDecision, Liveness, Transition, TransitionLimiter, TransitionLimiterPolicy,
};

fn proposal(to: Liveness, at_ms: u64) -> Transition {
    let from = match to {
        Liveness::Up => Liveness::Down,
        Liveness::Down => Liveness::Up,
    };
    Transition {
        from,
        to,
        reason: "test".to_owned(),
        at_ms,
    }
}

fn render(decision: &LimiterDecision) -> String {
    match decision {
        LimiterDecision::Publish(transition) => format!("publish {}", transition.to.as_str()),
        LimiterDecision::PublishFlapping(transition) => {
            format!(
                "flapping {}->{}",
                transition.from.as_str(),
                transition.to.as_str()
            )
        }
        LimiterDecision::Suppress => "suppress".to_owned(),
    }
}

/// Proposes alternating Down/Up transitions at `times_ms`; expects the decisions.
#[track_caller]
fn check(policy: TransitionLimiterPolicy, times_ms: &[u64], expected: &[&str]) {
    assert!(policy.validate().is_ok(), "test policy is invalid");
    let mut limiter = TransitionLimiter::new(policy, Liveness::Up);
    let decisions: Vec<String> = times_ms
        .iter()
        .enumerate()
        .map(|(index, at_ms)| {
            let to = if index % 2 == 0 {
                Liveness::Down
            } else {
                Liveness::Up
            };
            render(&limiter.admit(proposal(to, *at_ms)))
        })
        .collect();
    assert_eq!(decisions, expected);
}

fn four_per_minute() -> TransitionLimiterPolicy {
    TransitionLimiterPolicy {
        max_transitions: 4,
        window_ms: 60_000,
    }
}

#[test]
fn transitions_within_budget_are_published() {
    check(
        four_per_minute(),
        &[0, 1_000, 2_000],
        &["publish down", "publish up", "publish down"],
    );
    // Spread over time, any number is fine.
    check(
        four_per_minute(),
        &[0, 30_000, 60_000, 90_000, 120_000, 150_000, 180_000],
        &[
            "publish down",
            "publish up",
            "publish down",
            "publish up",
            "publish down",
            "publish up",
            "publish down",
        ],
    );
}

#[test]
fn a_flapping_gateway_takes_the_last_slot_and_is_held_down() {
    check(
        four_per_minute(),
        &[0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000],
        &[
            "publish down",
            "publish up",
            "publish down",
            "flapping down->down",
            "suppress",
            "suppress",
            "suppress",
        ],
    );
    check(
        four_per_minute(),
        &[0, 1_000, 2_000, 3_000, 4_000],
        &[
            "publish down",
            "publish up",
            "publish down",
            "flapping down->down",
            "suppress",
        ],
    );
}

#[test]
fn flapping_ends_only_after_a_quiet_window() {
    let mut limiter = TransitionLimiter::new(four_per_minute(), Liveness::Up);
    let mut published = 0;
    for index in 0..20u64 {
        let to = if index % 2 == 0 {
            Liveness::Down
        } else {
            Liveness::Up
        };
        match limiter.admit(proposal(to, index * 1_000)) {
            LimiterDecision::Publish(_) | LimiterDecision::PublishFlapping(_) => published += 1,
            LimiterDecision::Suppress => {}
        }
    }
    assert_eq!(published, 4, "never more than the budget in a window");
    assert!(limiter.is_flapping());
    assert_eq!(limiter.published(), Liveness::Down);
    // The last proposal was at 19 s: nothing changes before 79 s.
    assert_eq!(limiter.poll(Liveness::Up, 78_999), None);
    assert!(limiter.is_flapping());
    let back = limiter
        .poll(Liveness::Up, 79_000)
        .expect("quiet for a window: publish up");
    assert_eq!((back.from, back.to), (Liveness::Down, Liveness::Up));
    assert_eq!(back.reason, "stable for 60000 ms after flapping");
    assert!(!limiter.is_flapping());
    // Counting starts afresh.
    assert!(matches!(
        limiter.admit(proposal(Liveness::Down, 80_000)),
        LimiterDecision::Publish(_)
    ));
}

#[test]
fn a_quiet_window_while_down_publishes_nothing() {
    let mut limiter = TransitionLimiter::new(four_per_minute(), Liveness::Up);
    for (index, at_ms) in [0, 1, 2, 3].into_iter().enumerate() {
        let to = if index % 2 == 0 {
            Liveness::Down
        } else {
            Liveness::Up
        };
        limiter.admit(proposal(to, at_ms));
    }
    assert!(limiter.is_flapping());
    assert_eq!(limiter.poll(Liveness::Down, 100_000), None);
    assert!(!limiter.is_flapping());
}

#[test]
fn a_transition_to_the_published_state_is_suppressed() {
    let mut limiter = TransitionLimiter::new(four_per_minute(), Liveness::Down);
    assert_eq!(
        limiter.admit(proposal(Liveness::Down, 1)),
        LimiterDecision::Suppress
    );
    let LimiterDecision::Publish(transition) = limiter.admit(proposal(Liveness::Up, 2)) else {
        panic!("a real change is published");
    };
    assert_eq!(transition.from, Liveness::Down);
}

#[test]
fn a_budget_below_two_is_refused() {
    assert!(TransitionLimiterPolicy {
        max_transitions: 1,
        window_ms: 60_000
    }
    .validate()
    .is_err());
    assert!(TransitionLimiterPolicy {
        max_transitions: 6,
        window_ms: 0
    }
    .validate()
    .is_err());
    assert!(TransitionLimiterPolicy::default().validate().is_ok());
}
