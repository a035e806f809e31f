//! The passive circuit breaker of one gateway, fed by leg reports (ReportLeg).
//!
//! A transport failure, a 408 or a 503 is the gateway's fault; any other final answer,
//! including the callee's 486 or 404, shows the gateway working. The breaker opens on
//! `consecutive_failures_to_open` failures in a row, or when failures reach
//! `failure_ratio_percent` of at least `min_samples` reports in the last `window_ms`.
//!
//! Once open, call traffic is not counted and the gateway is skipped; after `cool_down_ms`
//! it is [`BreakerState::ProbeDecides`]: active probes close it after
//! `probe_successes_to_close` alive probes in a row. It never closes by itself.
//!
//! Half-open: from `trial_after_ms` after the opening (well before the cool-down ends), one
//! call in `trial_one_in` is offered the gateway anyway, as a *trial* ([`is_breaker_trial`]
//! picks the calls from a hash of the call and the gateway, so every node samples the same
//! calls). A trial that shows the gateway working closes the breaker early
//! ([`CircuitBreaker::record_trial`]); a failed one keeps it open. A failed trial does not
//! restart the cool-down: the cool-down runs from the opening's replicated log time, which
//! every node and the prober agree on, and restarting it would take a log write per failed
//! trial of a dead gateway; after the cool-down the probes still need alive replies in a row
//! to close it, so a gateway that keeps failing stays down.
//!
//! The window is time-based but held in [`WINDOW_BUCKETS`] fixed buckets of counts, so its
//! memory is constant however many calls a gateway carries.

use serde::{Deserialize, Serialize};

use super::assignment::rendezvous_weight;
use super::probe::MAX_THRESHOLD;
use super::{Liveness, Transition};
use crate::FieldError;

/// Buckets the sliding window is divided into; the window slides one bucket at a time.
pub const WINDOW_BUCKETS: usize = 10;
/// Shortest window accepted: one millisecond per bucket at least.
pub const MIN_WINDOW_MS: u64 = WINDOW_BUCKETS as u64;
/// Longest window and cool-down accepted (one hour).
pub const MAX_WINDOW_MS: u64 = 3_600_000;
/// Most samples the ratio rule may ask for.
pub const MAX_MIN_SAMPLES: u32 = 100_000;
/// Sparsest trial sampling accepted: one call in this many.
pub const MAX_TRIAL_ONE_IN: u32 = 1_000_000;

const REQUEST_TIMEOUT_CODE: u16 = 408;
const SERVICE_UNAVAILABLE_CODE: u16 = 503;

/// When the breaker opens and how it comes back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerPolicy {
    pub consecutive_failures_to_open: u32,
    pub window_ms: u64,
    /// Fewer reports than this in the window never open the breaker by ratio.
    pub min_samples: u32,
    /// Opens when failures are at least this share of the window's reports (1 to 100).
    pub failure_ratio_percent: u8,
    pub cool_down_ms: u64,
    /// Consecutive alive probes, after the cool-down, that close the breaker.
    pub probe_successes_to_close: u32,
    /// Half-open: how long after the opening sampled calls start trying the gateway. Short,
    /// so a gateway that recovered quickly is not held down for the whole cool-down; not
    /// zero by default, so the calls in flight when it opened are not sent straight back.
    /// At most `cool_down_ms`.
    pub trial_after_ms: u64,
    /// Half-open: one call in this many tries a breaker-held gateway as a trial; 0 turns
    /// trials off (only probes, or the cool-down for an unprobed gateway, bring it back).
    pub trial_one_in: u32,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            consecutive_failures_to_open: 5,
            window_ms: 30_000,
            min_samples: 20,
            failure_ratio_percent: 50,
            cool_down_ms: 30_000,
            probe_successes_to_close: 2,
            trial_after_ms: 5_000,
            trial_one_in: 20,
        }
    }
}

impl BreakerPolicy {
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(1..=MAX_THRESHOLD).contains(&self.consecutive_failures_to_open) {
            return Err(FieldError::new(
                "consecutive_failures_to_open",
                format!("consecutive_failures_to_open must be from 1 to {MAX_THRESHOLD}"),
            ));
        }
        if !(1..=MAX_THRESHOLD).contains(&self.probe_successes_to_close) {
            return Err(FieldError::new(
                "probe_successes_to_close",
                format!("probe_successes_to_close must be from 1 to {MAX_THRESHOLD}"),
            ));
        }
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&self.window_ms) {
            return Err(FieldError::new(
                "window_ms",
                format!("window_ms must be from {MIN_WINDOW_MS} to {MAX_WINDOW_MS}"),
            ));
        }
        if self.cool_down_ms > MAX_WINDOW_MS {
            return Err(FieldError::new(
                "cool_down_ms",
                format!("cool_down_ms must be at most {MAX_WINDOW_MS}"),
            ));
        }
        if self.trial_after_ms > self.cool_down_ms {
            return Err(FieldError::new(
                "trial_after_ms",
                "trial_after_ms must be at most cool_down_ms (trials are how a breaker closes \
                 before the cool-down ends)",
            ));
        }
        if self.trial_one_in > MAX_TRIAL_ONE_IN {
            return Err(FieldError::new(
                "trial_one_in",
                format!("trial_one_in must be from 0 (no trials) to {MAX_TRIAL_ONE_IN}"),
            ));
        }
        if !(1..=MAX_MIN_SAMPLES).contains(&self.min_samples) {
            return Err(FieldError::new(
                "min_samples",
                format!("min_samples must be from 1 to {MAX_MIN_SAMPLES}"),
            ));
        }
        if !(1..=100).contains(&self.failure_ratio_percent) {
            return Err(FieldError::new(
                "failure_ratio_percent",
                "failure_ratio_percent must be from 1 to 100",
            ));
        }
        Ok(())
    }

    fn bucket_ms(&self) -> u64 {
        (self.window_ms / WINDOW_BUCKETS as u64).max(1)
    }
}

/// How a leg through the gateway ended, from a leg report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegOutcome {
    /// The proxy could not reach the gateway (connect failure, ICMP, TLS).
    TransportFailure,
    /// A final answer (2xx or a failure code) from or through the gateway.
    Answer { status_code: u16 },
}

impl LegOutcome {
    /// Transport failures, 408 and 503 are the gateway's fault; every other answer means the
    /// gateway is working, even when the callee refused the call.
    pub fn is_gateway_failure(self) -> bool {
        match self {
            LegOutcome::TransportFailure => true,
            LegOutcome::Answer { status_code } => {
                status_code == REQUEST_TIMEOUT_CODE || status_code == SERVICE_UNAVAILABLE_CODE
            }
        }
    }

    fn describe(self) -> String {
        match self {
            LegOutcome::TransportFailure => "transport failure".to_owned(),
            LegOutcome::Answer { status_code } => status_code.to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakerState {
    /// Calls flow; reports are counted.
    Closed,
    /// Opened at `opened_at_ms`; waiting out the cool-down.
    Open { opened_at_ms: u64 },
    /// Cool-down over: `probe_successes` alive probes in a row so far.
    ProbeDecides { probe_successes: u32 },
}

/// Counts in one slice of the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    /// `now_ms / bucket_ms` of the reports counted here.
    index: u64,
    successes: u32,
    failures: u32,
}

/// The circuit breaker of one gateway.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    state: BreakerState,
    consecutive_failures: u32,
    /// Ring of buckets, slot `index % WINDOW_BUCKETS`; a slot with a stale index is empty.
    buckets: [Bucket; WINDOW_BUCKETS],
}

impl CircuitBreaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        CircuitBreaker {
            policy,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            buckets: [Bucket::default(); WINDOW_BUCKETS],
        }
    }

    /// A breaker that opened at `opened_at_ms`, possibly on another node: the prober of a
    /// gateway whose breaker opened elsewhere lets its probes decide from here.
    pub fn opened_at(policy: BreakerPolicy, opened_at_ms: u64) -> Self {
        let mut breaker = CircuitBreaker::new(policy);
        breaker.open(opened_at_ms);
        breaker
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn is_open(&self) -> bool {
        self.state != BreakerState::Closed
    }

    /// Counts one leg report; returns the Up→Down transition when the breaker opens.
    /// Reports while open are not counted here: a failure adds nothing to an opening already
    /// made, and [`CircuitBreaker::record_trial`] judges the reports of the half-open phase.
    pub fn record_leg(&mut self, outcome: LegOutcome, now_ms: u64) -> Option<Transition> {
        if self.state != BreakerState::Closed {
            return None;
        }
        let failed = outcome.is_gateway_failure();
        let bucket = self.bucket_for(now_ms);
        if failed {
            bucket.failures = bucket.failures.saturating_add(1);
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        } else {
            bucket.successes = bucket.successes.saturating_add(1);
            self.consecutive_failures = 0;
            return None;
        }
        let reason = if self.consecutive_failures >= self.policy.consecutive_failures_to_open {
            format!(
                "breaker: {} consecutive failed legs, last {}",
                self.consecutive_failures,
                outcome.describe()
            )
        } else {
            let (successes, failures) = self.window_counts(now_ms);
            let samples = u64::from(successes) + u64::from(failures);
            let over_ratio =
                u64::from(failures) * 100 >= u64::from(self.policy.failure_ratio_percent) * samples;
            if samples < u64::from(self.policy.min_samples) || !over_ratio {
                return None;
            }
            format!(
                "breaker: {failures} of {samples} legs failed in {} ms",
                self.policy.window_ms
            )
        };
        self.open(now_ms);
        Some(Transition {
            from: Liveness::Up,
            to: Liveness::Down,
            reason,
            at_ms: now_ms,
        })
    }

    /// Whether the breaker is half-open at `now_ms`: open for at least `trial_after_ms` (or
    /// past its cool-down), with trials on, so sampled calls try the gateway.
    pub fn admits_trials(&self, now_ms: u64) -> bool {
        match self.state {
            BreakerState::Closed => false,
            BreakerState::Open { opened_at_ms } => trials_open(&self.policy, opened_at_ms, now_ms),
            BreakerState::ProbeDecides { .. } => self.policy.trial_one_in != 0,
        }
    }

    /// Judges the report of a leg through the gateway while the breaker is half-open: a leg
    /// that shows the gateway working closes it early and returns the Down→Up transition;
    /// a gateway failure keeps it open, without restarting the cool-down (see the module
    /// documentation). Before `trial_after_ms` nothing counts: those reports are of calls
    /// placed before or around the opening, not trials.
    pub fn record_trial(&mut self, outcome: LegOutcome, now_ms: u64) -> Option<Transition> {
        self.poll(now_ms);
        if !self.admits_trials(now_ms) || outcome.is_gateway_failure() {
            return None;
        }
        self.close();
        Some(Transition {
            from: Liveness::Down,
            to: Liveness::Up,
            reason: format!(
                "breaker closed: a trial call through it ended {}",
                outcome.describe()
            ),
            at_ms: now_ms,
        })
    }

    /// Moves an open breaker to [`BreakerState::ProbeDecides`] once the cool-down is over.
    /// Call it on a timer or before feeding a probe result.
    pub fn poll(&mut self, now_ms: u64) {
        if let BreakerState::Open { opened_at_ms } = self.state {
            if now_ms.saturating_sub(opened_at_ms) >= self.policy.cool_down_ms {
                self.state = BreakerState::ProbeDecides { probe_successes: 0 };
            }
        }
    }

    /// Feeds one active probe verdict (alive or not, as [`super::ProbeTracker`] judged it).
    /// Returns the Down→Up transition when probes close the breaker.
    pub fn record_probe(&mut self, alive: bool, now_ms: u64) -> Option<Transition> {
        self.poll(now_ms);
        let BreakerState::ProbeDecides { probe_successes } = self.state else {
            return None;
        };
        if !alive {
            self.state = BreakerState::ProbeDecides { probe_successes: 0 };
            return None;
        }
        let probe_successes = probe_successes.saturating_add(1);
        if probe_successes < self.policy.probe_successes_to_close {
            self.state = BreakerState::ProbeDecides { probe_successes };
            return None;
        }
        self.close();
        Some(Transition {
            from: Liveness::Down,
            to: Liveness::Up,
            reason: format!("breaker closed: {probe_successes} alive probes after cool-down"),
            at_ms: now_ms,
        })
    }

    /// Closed afresh: the failures that opened it are forgotten.
    fn close(&mut self) {
        self.state = BreakerState::Closed;
        self.consecutive_failures = 0;
        self.buckets = [Bucket::default(); WINDOW_BUCKETS];
    }

    fn open(&mut self, now_ms: u64) {
        self.state = BreakerState::Open {
            opened_at_ms: now_ms,
        };
        self.consecutive_failures = 0;
    }

    fn bucket_for(&mut self, now_ms: u64) -> &mut Bucket {
        let index = now_ms / self.policy.bucket_ms();
        // The modulo keeps the slot below WINDOW_BUCKETS, the array's length.
        let slot = (index % WINDOW_BUCKETS as u64) as usize;
        let bucket = &mut self.buckets[slot];
        if bucket.index != index {
            *bucket = Bucket {
                index,
                successes: 0,
                failures: 0,
            };
        }
        bucket
    }

    /// Successes and failures over the buckets inside the window ending at `now_ms`.
    fn window_counts(&self, now_ms: u64) -> (u32, u32) {
        let current = now_ms / self.policy.bucket_ms();
        let oldest = current.saturating_sub(WINDOW_BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|bucket| (oldest..=current).contains(&bucket.index))
            .fold((0u32, 0u32), |(successes, failures), bucket| {
                (
                    successes.saturating_add(bucket.successes),
                    failures.saturating_add(bucket.failures),
                )
            })
    }
}

/// Whether the call hashed to `call_hash` tries `gateway`, held down by its breaker since
/// `opened_at_ms` (the opening's log time), as a half-open trial at `now_ms`.
///
/// A pure function of replicated values and the call, so every node answering for the same
/// call at the same applied index picks the same trials. The draw mixes the gateway's name
/// in, so the calls sampled differ from gateway to gateway and one unlucky call does not
/// carry the trials of every open breaker at once.
pub fn is_breaker_trial(
    policy: &BreakerPolicy,
    opened_at_ms: u64,
    now_ms: u64,
    call_hash: u64,
    gateway: &str,
) -> bool {
    trials_open(policy, opened_at_ms, now_ms)
        && rendezvous_weight(gateway, call_hash).is_multiple_of(u64::from(policy.trial_one_in))
}

/// Whether a breaker opened at `opened_at_ms` takes trial calls at `now_ms`: trials are on
/// and `trial_after_ms` has passed since the opening.
fn trials_open(policy: &BreakerPolicy, opened_at_ms: u64, now_ms: u64) -> bool {
    policy.trial_one_in != 0 && now_ms.saturating_sub(opened_at_ms) >= policy.trial_after_ms
}

/// What a route lookup needs to offer breaker-held gateways to sampled calls: the replicated
/// health table (when each breaker opened, and the policy), the call and the time.
#[derive(Clone, Copy, Debug)]
pub struct BreakerTrials<'a> {
    pub table: &'a super::HealthTable,
    /// A hash of the call's Call-ID, the same on every node (the route token's).
    pub call_hash: u64,
    pub now_ms: u64,
}

impl BreakerTrials<'_> {
    /// Whether this call tries `gateway` as a trial: it is held down by its breaker in the
    /// table, and [`is_breaker_trial`] samples the call.
    pub fn admits(&self, gateway: &str) -> bool {
        self.table.gateway(gateway).is_some_and(|state| {
            state.state == Liveness::Down
                && state.source == super::TransitionSource::Breaker
                && is_breaker_trial(
                    &self.table.policy().breaker,
                    state.since_ms,
                    self.now_ms,
                    self.call_hash,
                    gateway,
                )
        })
    }
}
