//! One run: workers taking requests off a shared [`Clock`], a warm-up that is not recorded,
//! a measured window, the server sampled at both ends of it, and the [`RunResult`] it came
//! to.
//!
//! Every request of a run has an index, handed out in order by the clock, which is what a
//! backend turns into a number to look up or a key to write, and (open loop) what fixes when
//! it is due. A request counts when it was due inside the measured window; its latency runs
//! from when it was due to its answer.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{
    histogram::{Latencies, LatencySummary},
    process::{self, ServerUsage, TICKS_PER_SECOND},
    schedule::Pace,
};

/// Longest wait for one answer; a request still unanswered then counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait, after the window ends, for the answers still owed before the run is
/// reported without them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Error messages kept per kind of error, for the report.
const ERROR_KINDS_KEPT: usize = 16;

/// How long a run lasts and how it is paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunPlan {
    /// Requests sent but not recorded before the window: connections warm, caches filled.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    pub pace: Pace,
}

/// One request to send: its index, and when it was due.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    pub index: u64,
    pub due: Instant,
    /// Due inside the measured window (not in the warm-up).
    pub measured: bool,
}

/// Hands out requests to the workers of one run, in order, until the window ends.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    pace: Pace,
    next_index: AtomicU64,
    /// Open loop: the first request due in the window. Requests of the warm-up still unsent
    /// when the window opens are skipped, so a backlog the warm-up built does not count in
    /// the window as requests due before it.
    first_measured_index: u64,
}

impl Clock {
    pub fn new(plan: RunPlan, start: Instant) -> Clock {
        let measure_from = start + plan.warmup;
        Clock {
            start,
            measure_from,
            end: measure_from + plan.duration,
            pace: plan.pace,
            next_index: AtomicU64::new(0),
            first_measured_index: plan
                .pace
                .due_between(Duration::ZERO, plan.warmup)
                .unwrap_or(0),
        }
    }

    /// The next request, due now (closed loop) or at its place in the schedule (open loop:
    /// possibly in the past when the workers have fallen behind, and then sent at once).
    /// `None` once the window has ended, or the next request would be due after it.
    pub fn claim(&self) -> Option<Ticket> {
        self.claim_at(Instant::now())
    }

    /// [`Clock::claim`] at `now`.
    pub fn claim_at(&self, now: Instant) -> Option<Ticket> {
        if now >= self.end {
            return None;
        }
        let mut index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let mut due = match self.pace.due(index) {
            Some(offset) => self.start + offset,
            None => now,
        };
        if due < self.measure_from && now >= self.measure_from {
            // A warm-up request unsent when the window opened: skip to the window's first.
            // Only an open loop gets here (a closed loop's requests are due now); after the
            // `fetch_max` every index handed out is due in the window.
            self.next_index
                .fetch_max(self.first_measured_index, Ordering::Relaxed);
            index = self.next_index.fetch_add(1, Ordering::Relaxed);
            due = self.start + self.pace.due(index).unwrap_or_default();
        }
        (due < self.end).then_some(Ticket {
            index,
            due,
            measured: due >= self.measure_from,
        })
    }

    pub fn measure_from(&self) -> Instant {
        self.measure_from
    }

    pub fn end(&self) -> Instant {
        self.end
    }
}

/// What a request came to, when it was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with what was asked for: legs, rows, a write acknowledged.
    Found,
    /// Answered with nothing: no route, no row. Counted apart, so a run over numbers nothing
    /// prices shows.
    Empty,
}

/// A request that got no answer: its kind (a gRPC code, "timeout", "connection") groups
/// it in the report; the message says what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub kind: String,
    pub message: String,
}

impl CallError {
    pub fn new(kind: impl Into<String>, message: impl std::fmt::Display) -> CallError {
        CallError {
            kind: kind.into(),
            message: message.to_string(),
        }
    }
}

impl From<tonic::Status> for CallError {
    fn from(status: tonic::Status) -> CallError {
        CallError::new(format!("{:?}", status.code()), status.message())
    }
}

/// One worker's count of its measured requests.
#[derive(Clone, Debug)]
pub struct Tally {
    pub latencies: Latencies,
    pub found: u64,
    pub empty: u64,
    /// Errors by kind, with the first message of each.
    pub errors: BTreeMap<String, (u64, String)>,
}

impl Tally {
    pub fn new(latencies: Latencies) -> Tally {
        Tally {
            latencies,
            found: 0,
            empty: 0,
            errors: BTreeMap::new(),
        }
    }

    /// Counts a request answered (or failed) at `answered`, if it was due in the window.
    pub fn record(
        &mut self,
        ticket: &Ticket,
        answered: Instant,
        result: Result<Outcome, CallError>,
    ) {
        if !ticket.measured {
            return;
        }
        match result {
            Ok(outcome) => {
                self.latencies
                    .record(answered.saturating_duration_since(ticket.due));
                match outcome {
                    Outcome::Found => self.found += 1,
                    Outcome::Empty => self.empty += 1,
                }
            }
            Err(error) => self.error(error),
        }
    }

    /// Counts an error outside any one request (a stream that broke with answers owed).
    pub fn error(&mut self, error: CallError) {
        let kinds = self.errors.len();
        match self.errors.get_mut(&error.kind) {
            Some((count, _)) => *count += 1,
            None if kinds < ERROR_KINDS_KEPT => {
                self.errors.insert(error.kind, (1, error.message));
            }
            None => {
                let other = self
                    .errors
                    .entry("other".to_owned())
                    .or_insert((0, error.message));
                other.0 += 1;
            }
        }
    }

    pub fn merge(&mut self, other: Tally) -> Result<(), hdrhistogram::AdditionError> {
        self.latencies.merge(&other.latencies)?;
        self.found += other.found;
        self.empty += other.empty;
        for (kind, (count, message)) in other.errors {
            self.errors.entry(kind).or_insert((0, message)).0 += count;
        }
        Ok(())
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|(count, _)| count).sum()
    }
}

/// One request of a backend, issued by a worker that owns its connection.
pub trait Request: Send + 'static {
    /// Sends request `index` and waits for its answer.
    fn send(&mut self, index: u64) -> impl Future<Output = Result<Outcome, CallError>> + Send;
}

/// The shape of a run, as its result records it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunShape {
    /// What was measured: `trunkline-route`, `trunkline-stream`, `redis-lpm`, `postgres-lpm`,
    /// `trunkline-set-setting`, `etcd-put`.
    pub backend: String,
    /// Where the requests went: addresses, and for writes which member.
    pub target: String,
    pub connections: usize,
    /// Requests in flight per connection: concurrent unary calls (gRPC), streams (the
    /// streaming API), 1 (Redis, PostgreSQL).
    pub streams_per_connection: usize,
    /// The streaming API only: requests in flight per stream.
    pub window_per_stream: Option<usize>,
}

/// Everything a run measured: one JSON object per run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The run's name in a report (`--label`).
    pub label: String,
    #[serde(flatten)]
    pub shape: RunShape,
    /// `closed`, or `open` with `target_per_second`.
    pub mode: String,
    pub target_per_second: Option<u64>,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    /// Requests due in the window and answered: `found + empty`.
    pub completed: u64,
    pub found: u64,
    pub empty: u64,
    pub errors: u64,
    /// Errors by kind: count and the first message.
    pub error_kinds: BTreeMap<String, (u64, String)>,
    /// Open loop: requests due in the window that were never sent because the workers had
    /// fallen that far behind when it ended.
    pub unsent: Option<u64>,
    /// Completed requests per second of the window.
    pub per_second: f64,
    pub latency: LatencySummary,
    /// The server processes (`--server-pids`), when given.
    pub server: Option<ServerUsage>,
    /// Server CPU per completed request, in microseconds.
    pub server_cpu_micros_per_op: Option<f64>,
    /// The load generator's own CPU seconds in the window, which the server did not have.
    pub client_cpu_seconds: f64,
}

impl RunResult {
    /// One line for a person: rate, percentiles, server cost.
    pub fn human_line(&self) -> String {
        let mut line = format!(
            "{:<24} {:>9.0}/s  p50 {:>7.3} ms  p99 {:>7.3} ms  p999 {:>7.3} ms  max {:>8.3} ms  \
             {} done, {} empty, {} errors",
            self.label,
            self.per_second,
            self.latency.p50_ms,
            self.latency.p99_ms,
            self.latency.p999_ms,
            self.latency.max_ms,
            self.completed,
            self.empty,
            self.errors,
        );
        if let Some(unsent) = self.unsent.filter(|unsent| *unsent > 0) {
            line.push_str(&format!(", {unsent} unsent (behind schedule)"));
        }
        if let (Some(server), Some(cpu)) = (&self.server, self.server_cpu_micros_per_op) {
            line.push_str(&format!(
                "; server {cpu:.1} µs CPU/op, RSS {:.1} MiB",
                server.rss_kib as f64 / 1024.0
            ));
        }
        for (kind, (count, message)) in &self.error_kinds {
            line.push_str(&format!("\n  {count} × {kind}: {message}"));
        }
        line
    }
}

/// Runs `workers` (each sending one request at a time) for `plan`, sampling `server_pids` at
/// both ends of the window. `latencies` is an empty histogram each worker starts from.
pub async fn run<R: Request>(
    label: &str,
    shape: RunShape,
    plan: RunPlan,
    server_pids: &[u32],
    latencies: Latencies,
    workers: Vec<R>,
) -> anyhow::Result<RunResult> {
    let clock = Arc::new(Clock::new(plan, Instant::now()));
    let mut tasks = tokio::task::JoinSet::new();
    for mut worker in workers {
        let clock = clock.clone();
        let mut tally = Tally::new(latencies.clone());
        tasks.spawn(async move {
            while let Some(ticket) = clock.claim() {
                tokio::time::sleep_until(ticket.due).await;
                let result =
                    match tokio::time::timeout(REQUEST_TIMEOUT, worker.send(ticket.index)).await {
                        Ok(result) => result,
                        Err(_) => Err(CallError::new("timeout", format!("{REQUEST_TIMEOUT:?}"))),
                    };
                tally.record(&ticket, Instant::now(), result);
            }
            // The worker (its connection) goes back with its tally, to be dropped only after
            // the window's last sample: a PostgreSQL backend exits with its connection.
            (tally, worker)
        });
    }
    collect(label, shape, plan, server_pids, latencies, clock, tasks).await
}

/// Samples the server around the window while `tasks` run, then merges their tallies. What
/// else a task returns (its connections) is kept until the samples are taken.
pub async fn collect<K: Send + 'static>(
    label: &str,
    shape: RunShape,
    plan: RunPlan,
    server_pids: &[u32],
    latencies: Latencies,
    clock: Arc<Clock>,
    mut tasks: tokio::task::JoinSet<(Tally, K)>,
) -> anyhow::Result<RunResult> {
    tokio::time::sleep_until(clock.measure_from()).await;
    let (server_before, client_before) = (sample(server_pids)?, process::own_cpu_ticks());
    tokio::time::sleep_until(clock.end()).await;
    let (server_after, client_after) = (sample(server_pids)?, process::own_cpu_ticks());
    let mut total = Tally::new(latencies);
    let mut kept = Vec::new();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(joined) = tasks.join_next().await {
            let (tally, keep) = joined?;
            total.merge(tally)?;
            kept.push(keep);
        }
        anyhow::Ok(())
    })
    .await;
    drop(kept);
    match drained {
        Ok(result) => result?,
        Err(_) => {
            tasks.abort_all();
            total.error(CallError::new(
                "unfinished",
                format!("workers still waiting for answers {DRAIN_TIMEOUT:?} after the window"),
            ));
        }
    }
    let window = plan.duration.as_secs_f64();
    let completed = total.found + total.empty;
    let server = match (server_before, server_after) {
        (Some(before), Some(after)) => Some(ServerUsage::between(server_pids, &before, &after)),
        _ => None,
    };
    let server_cpu_micros_per_op = server
        .as_ref()
        .filter(|_| completed > 0)
        .map(|server| server.cpu_seconds * 1e6 / completed as f64);
    let unsent = plan
        .pace
        .due_between(plan.warmup, plan.warmup + plan.duration)
        .map(|due| due.saturating_sub(completed + total.error_count()));
    Ok(RunResult {
        label: label.to_owned(),
        shape,
        mode: match plan.pace {
            Pace::Closed => "closed".to_owned(),
            Pace::Open { .. } => "open".to_owned(),
        },
        target_per_second: match plan.pace {
            Pace::Closed => None,
            Pace::Open { per_second } => Some(per_second),
        },
        warmup_seconds: plan.warmup.as_secs_f64(),
        duration_seconds: window,
        completed,
        found: total.found,
        empty: total.empty,
        errors: total.error_count(),
        error_kinds: total.errors.clone(),
        unsent,
        per_second: completed as f64 / window,
        latency: total.latencies.summary(),
        server,
        server_cpu_micros_per_op,
        client_cpu_seconds: client_after.saturating_sub(client_before) as f64
            / TICKS_PER_SECOND as f64,
    })
}

fn sample(pids: &[u32]) -> anyhow::Result<Option<process::ServerSample>> {
    if pids.is_empty() {
        return Ok(None);
    }
    process::sample(pids).map(Some).map_err(anyhow::Error::msg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn plan(pace: Pace) -> RunPlan {
        RunPlan {
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            pace,
        }
    }

    #[test]
    fn an_open_loop_hands_out_requests_at_their_scheduled_times() {
        let start = Instant::now();
        let clock = Clock::new(plan(Pace::Open { per_second: 2 }), start);
        let tickets: Vec<Ticket> = (0..6).map(|_| clock.claim_at(start).unwrap()).collect();
        let offsets: Vec<u64> = tickets
            .iter()
            .map(|ticket| (ticket.due - start).as_millis() as u64)
            .collect();
        assert_eq!(offsets, [0, 500, 1_000, 1_500, 2_000, 2_500]);
        // The first two seconds are warm-up.
        let measured: Vec<bool> = tickets.iter().map(|ticket| ticket.measured).collect();
        assert_eq!(measured, [false, false, false, false, true, true]);
    }

    #[test]
    fn an_open_loop_stops_at_the_last_request_due_in_the_window() {
        let start = Instant::now();
        let clock = Clock::new(plan(Pace::Open { per_second: 2 }), start);
        // 12 s at 2 a second: requests 0 to 23.
        let claimed = std::iter::from_fn(|| clock.claim_at(start)).count();
        assert_eq!(claimed, 24);
    }

    #[test]
    fn an_open_loop_behind_at_the_end_of_the_warm_up_starts_the_window_on_schedule() {
        let start = Instant::now();
        let clock = Clock::new(plan(Pace::Open { per_second: 2 }), start);
        assert_eq!(clock.claim_at(start).unwrap().index, 0);
        // Half a second into the window the workers ask for request 1 (due at 0.5 s):
        // requests 1 to 3, due in the warm-up, are skipped; 4 is due as the window opens.
        let late = start + Duration::from_millis(2_500);
        let first = clock.claim_at(late).unwrap();
        assert_eq!(
            (first.index, first.due, first.measured),
            (4, start + Duration::from_secs(2), true)
        );
        assert_eq!(clock.claim_at(late).unwrap().index, 5);
    }

    #[test]
    fn an_open_loop_behind_schedule_stops_when_the_window_ends() {
        let start = Instant::now();
        let clock = Clock::new(plan(Pace::Open { per_second: 2 }), start);
        assert!(clock
            .claim_at(start + Duration::from_millis(11_999))
            .is_some());
        // Requests due before the end but not yet sent are not sent after it.
        assert!(clock.claim_at(start + Duration::from_secs(12)).is_none());
    }

    #[test]
    fn a_closed_loop_is_due_now_and_ends_with_the_window() {
        let start = Instant::now();
        let clock = Clock::new(plan(Pace::Closed), start);
        let first = clock.claim_at(start).unwrap();
        assert!(!first.measured);
        let now = start + Duration::from_secs(3);
        let later = clock.claim_at(now).unwrap();
        assert!(later.measured);
        assert_eq!((later.index, later.due), (1, now));
        assert!(clock.claim_at(start + Duration::from_secs(12)).is_none());
    }

    #[test]
    fn latency_runs_from_when_a_request_was_due() {
        let start = Instant::now();
        let clock = Clock::new(plan(Pace::Open { per_second: 1 }), start);
        let ticket = (0..3)
            .map(|_| clock.claim_at(start).unwrap())
            .last()
            .unwrap();
        // Due at 2 s; a worker stuck until 2.5 s sends it then, answered at 2.6 s: 600 ms.
        let mut tally = Tally::new(Latencies::new().unwrap());
        tally.record(
            &ticket,
            ticket.due + Duration::from_millis(600),
            Ok(Outcome::Found),
        );
        // 600 ms, within the histogram's 0.1%.
        let p50_ms = tally.latencies.summary().p50_ms;
        assert!((p50_ms - 600.0).abs() <= 0.6, "{p50_ms}");
    }

    #[test]
    fn errors_are_grouped_by_kind_and_warm_up_is_not_counted() {
        let now = Instant::now();
        let measured = Ticket {
            index: 0,
            due: now,
            measured: true,
        };
        let warmup = Ticket {
            measured: false,
            ..measured
        };
        let mut tally = Tally::new(Latencies::new().unwrap());
        tally.record(&warmup, now, Ok(Outcome::Found));
        tally.record(&measured, now, Ok(Outcome::Empty));
        for _ in 0..3 {
            let status = tonic::Status::unavailable("no leader");
            tally.record(&measured, now, Err(status.into()));
        }
        tally.record(&measured, now, Err(CallError::new("timeout", "10s")));
        assert_eq!((tally.found, tally.empty, tally.error_count()), (0, 1, 4));
        assert_eq!(
            tally.errors.get("Unavailable"),
            Some(&(3, "no leader".to_owned()))
        );
    }
}
