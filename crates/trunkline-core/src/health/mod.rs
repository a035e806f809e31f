//! Gateway health: the deterministic model behind active probes, the passive circuit breaker
//! and the assignment of probing work to nodes.
//!
//! Everything here is sans-IO. The node sends probes ([`crate::sip`]) and feeds each result in
//! with the current time as `now_ms`; the model answers with a [`Transition`] only when a
//! threshold is crossed. Transitions, not probe results, are what the node proposes to Raft,
//! and [`TransitionLimiter`] bounds how many a flapping gateway may write.
//!
//! - [`probe`]: consecutive probe failures and successes per gateway ([`ProbeTracker`]).
//! - [`breaker`]: the passive circuit breaker fed by leg reports ([`CircuitBreaker`]), and
//!   its half-open trials: which calls try a breaker-held gateway ([`BreakerTrials`]).
//! - [`limiter`]: at most K transitions per gateway per window ([`TransitionLimiter`]).
//! - [`assignment`]: which live node probes which gateway ([`assign`], rendezvous hashing).
//! - [`table`]: the replicated health of every gateway and the cluster's policy
//!   ([`HealthTable`]).

pub mod assignment;
pub mod breaker;
pub mod limiter;
pub mod probe;
pub mod table;

#[cfg(test)]
mod tests;
// The half-open state's tests, beside the others.
#[cfg(test)]
#[path = "tests/half_open.rs"]
mod half_open_tests;

use serde::{Deserialize, Serialize};

pub use assignment::{assign, rendezvous_weight, NodeId};
pub use breaker::{
    is_breaker_trial, BreakerPolicy, BreakerState, BreakerTrials, CircuitBreaker, LegOutcome,
    MAX_TRIAL_ONE_IN,
};
pub use limiter::MAX_TRANSITIONS_PER_WINDOW;
pub use limiter::{LimiterDecision, TransitionLimiter, TransitionLimiterPolicy};
pub use probe::{ProbeOverrides, ProbePolicy, ProbeResult, ProbeTracker, TransportErrorKind};
pub use table::{
    AppliedTransition, GatewayState, HealthCommand, HealthPolicy, HealthResponse, HealthTable,
    TransitionSource,
};

/// Whether a gateway takes calls, as the health checks see it. Drains are manual and live in
/// the routing configuration, not here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    #[default]
    Up,
    Down,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Up => "up",
            Liveness::Down => "down",
        }
    }
}

impl From<Liveness> for crate::routing::GatewayHealth {
    fn from(liveness: Liveness) -> Self {
        match liveness {
            Liveness::Up => crate::routing::GatewayHealth::Up,
            Liveness::Down => crate::routing::GatewayHealth::Down,
        }
    }
}

/// A health change worth replicating: a threshold was crossed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: Liveness,
    pub to: Liveness,
    /// For operators: "3 consecutive timeouts", "503 x3", "200 x2 after down".
    pub reason: String,
    pub at_ms: u64,
}
