//! Active probe thresholds for one gateway.
//!
//! A gateway goes down after `down_after` consecutive failed probes and comes back after
//! `up_after` consecutive successes, so one lucky 200 does not reinstate a flapping gateway.
//! A probe's timeout is its own (short, `timeout_ms`), never the SIP transaction timer, so a
//! silent gateway is down after about `interval_ms × down_after`. A timeout, a transport error
//! (including a refused TCP connection) or a locally generated 408 is never alive, and neither
//! is any code outside `alive_codes`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Liveness, Transition};
use crate::FieldError;

/// Most consecutive results a threshold may ask for.
pub const MAX_THRESHOLD: u32 = 100;
/// Most reply codes that may count as alive.
pub const MAX_ALIVE_CODES: usize = 16;
/// Shortest probe interval and timeout accepted, so probing can't become a flood.
pub const MIN_PROBE_INTERVAL_MS: u64 = 100;
/// Longest probe interval accepted (one hour).
pub const MAX_PROBE_INTERVAL_MS: u64 = 3_600_000;
/// SIP's Request Timeout: never alive, whether the gateway or our own stack produced it.
pub const REQUEST_TIMEOUT_CODE: u16 = 408;

/// How one gateway (or the cluster default) is probed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbePolicy {
    pub interval_ms: u64,
    /// How long to wait for a reply before counting a timeout; at most `interval_ms`.
    pub timeout_ms: u64,
    /// Consecutive failures that take an up gateway down.
    pub down_after: u32,
    /// Consecutive successes that bring a down gateway back.
    pub up_after: u32,
    /// Final reply codes that count as alive.
    pub alive_codes: BTreeSet<u16>,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        ProbePolicy {
            interval_ms: 2_000,
            timeout_ms: 1_000,
            down_after: 3,
            up_after: 2,
            alive_codes: BTreeSet::from([200]),
        }
    }
}

impl ProbePolicy {
    /// Refuses a policy that would probe too often, never decide, or count 408 as alive.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(MIN_PROBE_INTERVAL_MS..=MAX_PROBE_INTERVAL_MS).contains(&self.interval_ms) {
            return Err(FieldError::new(
                "interval_ms",
                format!(
                    "interval_ms must be from {MIN_PROBE_INTERVAL_MS} to {MAX_PROBE_INTERVAL_MS}"
                ),
            ));
        }
        if self.timeout_ms < MIN_PROBE_INTERVAL_MS || self.timeout_ms > self.interval_ms {
            return Err(FieldError::new(
                "timeout_ms",
                format!("timeout_ms must be from {MIN_PROBE_INTERVAL_MS} to interval_ms"),
            ));
        }
        for (name, value) in [("down_after", self.down_after), ("up_after", self.up_after)] {
            if !(1..=MAX_THRESHOLD).contains(&value) {
                return Err(FieldError::new(
                    name,
                    format!("{name} must be from 1 to {MAX_THRESHOLD}"),
                ));
            }
        }
        if self.alive_codes.is_empty() || self.alive_codes.len() > MAX_ALIVE_CODES {
            return Err(FieldError::new(
                "alive_codes",
                format!("alive_codes must hold 1 to {MAX_ALIVE_CODES} codes"),
            ));
        }
        for code in &self.alive_codes {
            if !(200..=699).contains(code) || *code == REQUEST_TIMEOUT_CODE {
                return Err(FieldError::new(
                    "alive_codes",
                    format!(
                        "alive code {code} must be a final code from 200 to 699 other than 408"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Why a transport failed, as the node reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportErrorKind {
    ConnectionRefused,
    ConnectionReset,
    /// The TCP or TLS connection was not established within the probe timeout.
    ConnectTimeout,
    Unreachable,
    Tls,
    Other,
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            TransportErrorKind::ConnectionRefused => "connection refused",
            TransportErrorKind::ConnectionReset => "connection reset",
            TransportErrorKind::ConnectTimeout => "connect timeout",
            TransportErrorKind::Unreachable => "unreachable",
            TransportErrorKind::Tls => "TLS error",
            TransportErrorKind::Other => "transport error",
        })
    }
}

/// How one probe ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeResult {
    /// A final reply from the gateway (provisional replies are not results).
    Reply {
        status_code: u16,
        round_trip_ms: u64,
    },
    /// No final reply within the probe timeout.
    Timeout,
    TransportError {
        kind: TransportErrorKind,
    },
}

/// What a failure streak is made of, so the reason can say "503 x3".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureCause {
    Timeout,
    Transport(TransportErrorKind),
    Code(u16),
}

impl fmt::Display for FailureCause {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Timeout => formatter.write_str("timeout"),
            FailureCause::Transport(kind) => write!(formatter, "{kind}"),
            FailureCause::Code(code) => write!(formatter, "{code}"),
        }
    }
}

/// A run of equal results: the cause of the last one, and whether all were the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Streak<T> {
    count: u32,
    last: T,
    uniform: bool,
}

impl<T: PartialEq + Copy> Streak<T> {
    fn extend(streak: Option<Streak<T>>, cause: T) -> Streak<T> {
        match streak {
            None => Streak {
                count: 1,
                last: cause,
                uniform: true,
            },
            Some(streak) => Streak {
                count: streak.count.saturating_add(1).min(MAX_THRESHOLD),
                last: cause,
                uniform: streak.uniform && streak.last == cause,
            },
        }
    }
}

/// Probe state of one gateway: counts consecutive results and reports threshold crossings.
#[derive(Clone, Debug)]
pub struct ProbeTracker {
    policy: ProbePolicy,
    state: Liveness,
    since_ms: u64,
    failures: Option<Streak<FailureCause>>,
    /// Consecutive alive replies; the code is kept for the reason text.
    successes: Option<Streak<u16>>,
    last_round_trip_ms: Option<u64>,
}

impl ProbeTracker {
    /// A tracker that starts from `state`, typically the replicated state when a node takes
    /// over probing, so a takeover does not reset a down gateway to up.
    pub fn new(policy: ProbePolicy, state: Liveness, now_ms: u64) -> Self {
        ProbeTracker {
            policy,
            state,
            since_ms: now_ms,
            failures: None,
            successes: None,
            last_round_trip_ms: None,
        }
    }

    pub fn policy(&self) -> &ProbePolicy {
        &self.policy
    }

    pub fn state(&self) -> Liveness {
        self.state
    }

    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures.map_or(0, |streak| streak.count)
    }

    pub fn consecutive_successes(&self) -> u32 {
        self.successes.map_or(0, |streak| streak.count)
    }

    pub fn last_round_trip_ms(&self) -> Option<u64> {
        self.last_round_trip_ms
    }

    /// Records one probe result; returns the transition if a threshold was crossed.
    /// A provisional reply (below 200) is not a result and changes nothing.
    pub fn record(&mut self, result: ProbeResult, now_ms: u64) -> Option<Transition> {
        let cause = match result {
            ProbeResult::Reply {
                status_code,
                round_trip_ms,
            } => {
                if status_code < 200 {
                    return None;
                }
                self.last_round_trip_ms = Some(round_trip_ms);
                if status_code != REQUEST_TIMEOUT_CODE
                    && self.policy.alive_codes.contains(&status_code)
                {
                    return self.record_success(status_code, now_ms);
                }
                FailureCause::Code(status_code)
            }
            ProbeResult::Timeout => FailureCause::Timeout,
            ProbeResult::TransportError { kind } => FailureCause::Transport(kind),
        };
        self.record_failure(cause, now_ms)
    }

    fn record_success(&mut self, status_code: u16, now_ms: u64) -> Option<Transition> {
        self.failures = None;
        let streak = Streak::extend(self.successes, status_code);
        self.successes = Some(streak);
        if self.state == Liveness::Down && streak.count >= self.policy.up_after {
            let reason = if streak.uniform {
                format!("{status_code} x{} after down", streak.count)
            } else {
                format!("{} alive replies after down", streak.count)
            };
            return Some(self.change(Liveness::Up, reason, now_ms));
        }
        None
    }

    fn record_failure(&mut self, cause: FailureCause, now_ms: u64) -> Option<Transition> {
        self.successes = None;
        let streak = Streak::extend(self.failures, cause);
        self.failures = Some(streak);
        if self.state == Liveness::Up && streak.count >= self.policy.down_after {
            let count = streak.count;
            let reason = match (streak.uniform, streak.last) {
                (true, FailureCause::Timeout) => format!("{count} consecutive timeouts"),
                (true, FailureCause::Transport(kind)) => {
                    format!("{count} consecutive transport errors ({kind})")
                }
                (true, FailureCause::Code(code)) => format!("{code} x{count}"),
                (false, last) => format!("{count} consecutive failures, last {last}"),
            };
            return Some(self.change(Liveness::Down, reason, now_ms));
        }
        None
    }

    fn change(&mut self, to: Liveness, reason: String, now_ms: u64) -> Transition {
        let from = self.state;
        self.state = to;
        self.since_ms = now_ms;
        Transition {
            from,
            to,
            reason,
            at_ms: now_ms,
        }
    }
}

/// How one gateway is probed: the cluster's [`ProbePolicy`] with some fields replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeOverrides {
    /// Not probed at all (some carriers drop OPTIONS): only the breaker and operators decide.
    pub disabled: bool,
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub down_after: Option<u32>,
    pub up_after: Option<u32>,
    pub alive_codes: Option<BTreeSet<u16>>,
}

impl ProbeOverrides {
    /// Checks each override on its own; [`ProbeOverrides::effective`] reconciles them with
    /// the cluster policy, which may change later.
    pub fn validate(&self) -> Result<(), FieldError> {
        let defaults = ProbePolicy::default();
        let interval_ms = self.interval_ms.unwrap_or(MAX_PROBE_INTERVAL_MS);
        ProbePolicy {
            interval_ms,
            timeout_ms: self
                .timeout_ms
                .unwrap_or(defaults.timeout_ms)
                .min(interval_ms),
            down_after: self.down_after.unwrap_or(defaults.down_after),
            up_after: self.up_after.unwrap_or(defaults.up_after),
            alive_codes: self.alive_codes.clone().unwrap_or(defaults.alive_codes),
        }
        .validate()?;
        if let Some(timeout_ms) = self.timeout_ms {
            if let Some(interval_ms) = self.interval_ms {
                if timeout_ms > interval_ms {
                    return Err(FieldError::new(
                        "timeout_ms",
                        "timeout_ms must be at most interval_ms",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The policy the gateway is probed with. A timeout longer than the interval (possible
    /// when only one of them is overridden) is cut to the interval.
    pub fn effective(&self, cluster: &ProbePolicy) -> ProbePolicy {
        let interval_ms = self.interval_ms.unwrap_or(cluster.interval_ms);
        ProbePolicy {
            interval_ms,
            timeout_ms: self
                .timeout_ms
                .unwrap_or(cluster.timeout_ms)
                .min(interval_ms),
            down_after: self.down_after.unwrap_or(cluster.down_after),
            up_after: self.up_after.unwrap_or(cluster.up_after),
            alive_codes: self
                .alive_codes
                .clone()
                .unwrap_or_else(|| cluster.alive_codes.clone()),
        }
    }

    pub fn is_default(&self) -> bool {
        *self == ProbeOverrides::default()
    }
}
