//! Rate limiting of health transitions, so a flapping gateway can't flood the Raft log.
//!
//! At most `max_transitions` transitions of one gateway are published per `window_ms`. The
//! last slot of the budget is reserved: when a transition would take it, the gateway is
//! declared flapping and the one published transition is to Down with a "flapping" reason
//! (Down→Down when it is already down, which updates the reason operators see). While
//! flapping, every further transition is suppressed and the gateway is held Down: routing
//! around a gateway that can't stay up for a minute is the safe side, and calls reroute to
//! other carriers anyway. Once no transition has been proposed for a whole window, the
//! limiter publishes the underlying state (from [`TransitionLimiter::poll`]) and counts
//! normally again.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Liveness, Transition};
use crate::FieldError;

/// Most transitions a policy may allow per window.
pub const MAX_TRANSITIONS_PER_WINDOW: u32 = 100;
/// Fewest: one ordinary transition and the reserved flapping one.
pub const MIN_TRANSITIONS_PER_WINDOW: u32 = 2;
/// Longest window accepted (one day).
pub const MAX_LIMITER_WINDOW_MS: u64 = 86_400_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionLimiterPolicy {
    pub max_transitions: u32,
    pub window_ms: u64,
}

impl Default for TransitionLimiterPolicy {
    fn default() -> Self {
        TransitionLimiterPolicy {
            max_transitions: 6,
            window_ms: 60_000,
        }
    }
}

impl TransitionLimiterPolicy {
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(MIN_TRANSITIONS_PER_WINDOW..=MAX_TRANSITIONS_PER_WINDOW)
            .contains(&self.max_transitions)
        {
            return Err(FieldError::new(
                "max_transitions",
                format!(
                    "max_transitions must be from {MIN_TRANSITIONS_PER_WINDOW} to {MAX_TRANSITIONS_PER_WINDOW}"
                ),
            ));
        }
        if !(1..=MAX_LIMITER_WINDOW_MS).contains(&self.window_ms) {
            return Err(FieldError::new(
                "window_ms",
                format!("window_ms must be from 1 to {MAX_LIMITER_WINDOW_MS}"),
            ));
        }
        Ok(())
    }
}

/// What to do with a proposed transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimiterDecision {
    /// Publish it as it is.
    Publish(Transition),
    /// The gateway is flapping: publish this transition to Down instead, and nothing more
    /// until it has been quiet for a window.
    PublishFlapping(Transition),
    /// Publish nothing.
    Suppress,
}

/// The transition budget of one gateway.
#[derive(Clone, Debug)]
pub struct TransitionLimiter {
    policy: TransitionLimiterPolicy,
    /// The state last published (what the cluster believes).
    published: Liveness,
    /// Times of published transitions inside the window; at most `max_transitions`.
    recent_ms: VecDeque<u64>,
    /// While flapping: the time of the last proposed transition.
    flapping_since_last_proposal_ms: Option<u64>,
}

impl TransitionLimiter {
    pub fn new(policy: TransitionLimiterPolicy, published: Liveness) -> Self {
        TransitionLimiter {
            policy,
            published,
            recent_ms: VecDeque::new(),
            flapping_since_last_proposal_ms: None,
        }
    }

    /// A limiter that continues the budget of the replicated history: `recent_ms` are the log
    /// times of the gateway's latest transitions, `flapping_since_ms` is set when the last one
    /// was a flapping hold. A node taking over a gateway starts here, so the takeover does not
    /// grant a fresh budget.
    pub fn with_history(
        policy: TransitionLimiterPolicy,
        published: Liveness,
        recent_ms: &[u64],
        flapping_since_ms: Option<u64>,
        now_ms: u64,
    ) -> Self {
        let keep = policy.max_transitions as usize;
        let start = recent_ms.len().saturating_sub(keep);
        let mut limiter = TransitionLimiter {
            policy,
            published,
            recent_ms: recent_ms
                .get(start..)
                .unwrap_or_default()
                .iter()
                .copied()
                .collect(),
            flapping_since_last_proposal_ms: flapping_since_ms,
        };
        limiter.forget_before(now_ms);
        limiter
    }

    pub fn published(&self) -> Liveness {
        self.published
    }

    pub fn is_flapping(&self) -> bool {
        self.flapping_since_last_proposal_ms.is_some()
    }

    /// Decides whether `transition` may be published.
    /// A transition to the state already published is suppressed; otherwise its `from` is
    /// set to the published state.
    pub fn admit(&mut self, mut transition: Transition) -> LimiterDecision {
        let now_ms = transition.at_ms;
        if self.is_flapping() {
            self.flapping_since_last_proposal_ms = Some(now_ms);
            return LimiterDecision::Suppress;
        }
        if transition.to == self.published {
            return LimiterDecision::Suppress;
        }
        transition.from = self.published;
        self.forget_before(now_ms);
        let budget = self.policy.max_transitions as usize;
        if self.recent_ms.len() + 1 < budget {
            self.recent_ms.push_back(now_ms);
            self.published = transition.to;
            return LimiterDecision::Publish(transition);
        }
        self.recent_ms.push_back(now_ms);
        self.flapping_since_last_proposal_ms = Some(now_ms);
        let flapping = Transition {
            from: self.published,
            to: Liveness::Down,
            reason: format!(
                "flapping: {} transitions in {} ms; held down until stable for {} ms",
                self.recent_ms.len(),
                self.policy.window_ms,
                self.policy.window_ms
            ),
            at_ms: now_ms,
        };
        self.published = Liveness::Down;
        LimiterDecision::PublishFlapping(flapping)
    }

    /// Ends flapping once no transition was proposed for a whole window; returns the
    /// transition to `underlying` (the trackers' current verdict) if it differs from what was
    /// published.
    pub fn poll(&mut self, underlying: Liveness, now_ms: u64) -> Option<Transition> {
        let last_proposal_ms = self.flapping_since_last_proposal_ms?;
        if now_ms.saturating_sub(last_proposal_ms) < self.policy.window_ms {
            return None;
        }
        self.flapping_since_last_proposal_ms = None;
        self.forget_before(now_ms);
        if underlying == self.published {
            return None;
        }
        let transition = Transition {
            from: self.published,
            to: underlying,
            reason: format!("stable for {} ms after flapping", self.policy.window_ms),
            at_ms: now_ms,
        };
        self.recent_ms.push_back(now_ms);
        self.published = underlying;
        Some(transition)
    }

    fn forget_before(&mut self, now_ms: u64) {
        while let Some(oldest) = self.recent_ms.front() {
            if now_ms.saturating_sub(*oldest) >= self.policy.window_ms {
                self.recent_ms.pop_front();
            } else {
                break;
            }
        }
    }
}
