//! One chaos test from start to verdict, so each test in `tests/chaos.rs` is only its
//! nemesis schedule:
//!
//! 1. [`Run::begin`]: Docker gate (fail with a message, or an explicit skip), one test at a
//!    time per process, a fresh cluster on its own network, the routing fixture, the
//!    workload started;
//! 2. the test injects faults through [`Run::nemesis`] (and may measure failover);
//! 3. [`Run::finish`]: heal everything, let the workload run on the healed cluster, stop it,
//!    wait until the nodes agree, read every node's final state, run the checkers, write the
//!    report, and panic with the reasons when a checker (or the test itself) failed; the
//!    containers' logs are then kept next to the report.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    cluster::{Cluster, ClusterOptions, CONVERGE_TIMEOUT},
    nemesis::Nemesis,
    run::{docker_gate, RunDir},
    workload::{
        final_states, setup_routing, FailoverTrial, FinalStates, RegisterOptions, Workload,
        CONCURRENT_LIMIT,
    },
    HarnessError, Result,
};
use crate::{
    checker::{
        availability, cdrs, convergence, limits, linearizable, lost_writes,
        report::{write_history, Report},
    },
    history::Recorder,
};

/// Name of the suite that runs on every `cargo test`.
pub const SHORT_SUITE: &str = "short";
/// Name of the suite behind `TRUNKLINE_CHAOS_LONG=1`.
pub const LONG_SUITE: &str = "long";
/// How long the workload keeps running on the healed cluster before it stops, so the
/// history shows the cluster serving again.
pub const RECOVERY_PERIOD: Duration = Duration::from_secs(3);
/// How long the workload runs before the first fault, so there is data to lose.
pub const WARM_UP: Duration = Duration::from_secs(2);

/// `TRUNKLINE_CHAOS_KEEP_LOGS=1` keeps the containers' logs of passing runs too.
pub const KEEP_LOGS_ENV: &str = "TRUNKLINE_CHAOS_KEEP_LOGS";

fn keep_logs() -> bool {
    std::env::var(KEEP_LOGS_ENV).is_ok_and(|value| value.trim() == "1")
}

/// One test at a time per process: several clusters at once on a 2-core machine starve
/// each other's heartbeats into spurious elections.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a run starts.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub cluster: ClusterOptions,
    /// The settings register workload; `None`: no register operations.
    pub register: Option<RegisterOptions>,
    /// Route lookups on every node.
    pub lookups: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            cluster: ClusterOptions::default(),
            register: Some(RegisterOptions::default()),
            lookups: true,
        }
    }
}

/// A running chaos test.
pub struct Run {
    pub suite: String,
    pub test: String,
    pub dir: RunDir,
    pub cluster: Arc<Cluster>,
    pub recorder: Recorder,
    pub nemesis: Nemesis,
    /// Leader-kill trials the test measured, for the report.
    pub failover: Vec<FailoverTrial>,
    workload: Option<Workload>,
    /// Whether the lookup and admission workers ran (and the limits checker judges them).
    lookups: bool,
    started: Instant,
    /// The highest Raft term once the cluster was up and warm: elections are counted from it.
    start_term: u64,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("suite", &self.suite)
            .field("test", &self.test)
            .field("dir", &self.dir)
            .finish()
    }
}

impl Run {
    /// Starts a test's cluster and workload. `None` when the chaos suites are skipped
    /// explicitly (`TRUNKLINE_CHAOS=0`, printed). Panics, with what to fix, when Docker is
    /// missing or the cluster can't be set up.
    pub async fn begin(suite: &str, test: &str, options: RunOptions) -> Option<Run> {
        match docker_gate(suite).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(error) => panic!("chaos {suite}/{test}: {error}"),
        }
        let serial = SERIAL.lock().await;
        let dir = RunDir::create(suite, test)
            .unwrap_or_else(|error| panic!("chaos {suite}/{test}: {error}"));
        println!("chaos {suite}/{test}: report in {}", dir.path.display());
        let cluster = Cluster::start(options.cluster.clone(), &dir.logs_dir())
            .await
            .map(Arc::new)
            .unwrap_or_else(|error| {
                panic!(
                    "chaos {suite}/{test}: can't start the cluster: {error}\nlogs: {}",
                    dir.logs_dir().display()
                )
            });
        if options.lookups {
            if let Err(error) = setup_routing(&cluster).await {
                cluster.save_logs();
                panic!("chaos {suite}/{test}: {error}");
            }
        }
        let recorder = Recorder::new();
        let mut nemesis = Nemesis::new(cluster.clone(), recorder.clone());
        nemesis.note(format!(
            "cluster {} up: {} nodes, heartbeat {} ms, election timeout {}-{} ms",
            cluster.run_id,
            options.cluster.nodes,
            options.cluster.heartbeat_interval_ms,
            options.cluster.election_timeout_min_ms,
            options.cluster.election_timeout_max_ms
        ));
        let workload = Workload::start(
            cluster.clone(),
            recorder.clone(),
            options.register.clone(),
            options.lookups,
        );
        tokio::time::sleep(WARM_UP).await;
        let start_term = cluster.highest_term().await;
        Some(Run {
            start_term,
            suite: suite.to_owned(),
            test: test.to_owned(),
            dir,
            cluster,
            recorder,
            nemesis,
            failover: Vec::new(),
            workload: Some(workload),
            lookups: options.lookups,
            started: Instant::now(),
            _serial: serial,
        })
    }

    /// Heals, checks and reports; panics when the test failed. `outcome` is the result of
    /// the test's own steps (a nemesis or measurement error fails the test too).
    pub async fn finish(mut self, outcome: Result<()>) {
        let mut problems: Vec<String> = Vec::new();
        if let Err(error) = &outcome {
            problems.push(format!("the test's own steps failed: {error}"));
        }
        self.nemesis.note("healing every fault");
        if let Err(error) = self.nemesis.heal_all().await {
            problems.push(format!("healing failed: {error}"));
        }
        tokio::time::sleep(RECOVERY_PERIOD).await;
        if let Some(workload) = self.workload.take() {
            let summary = workload.stop().await;
            self.nemesis.note(format!(
                "workload stopped after {:.1}s: {} register operations, {} lookups",
                summary.duration.as_secs_f64(),
                summary.register_operations,
                summary.lookups
            ));
        }
        let history = self.recorder.history();
        let keys: BTreeSet<String> = history.keys().into_iter().map(str::to_owned).collect();
        let finals = match self.final_states(&keys).await {
            Ok(finals) => Some(finals),
            Err(error) => {
                problems.push(format!("the nodes did not converge: {error}"));
                None
            }
        };

        let mut report = Report::new(format!("{}/{}", self.suite, self.test), &history);
        report.linearizability = Some(linearizable::check(
            &history,
            &linearizable::LinearizabilityOptions::default(),
        ));
        report.availability = Some(availability::check(
            &history,
            &availability::AvailabilityOptions::default(),
        ));
        if self.lookups {
            report.limits = Some(limits::check(&history, CONCURRENT_LIMIT));
        }
        if let (true, Some(finals)) = (self.lookups, &finals) {
            report.cdrs = Some(cdrs::check(&history, &finals.records));
        }
        if let Some(finals) = &finals {
            report.lost_writes = Some(lost_writes::check(&history, &finals.reads));
            report.convergence = Some(convergence::check(&finals.nodes));
        }
        let options = &self.cluster.options;
        report.notes.push(format!(
            "cluster {}: {} nodes at first, heartbeat {} ms, election timeout {}-{} ms, \
             snapshot every {} entries",
            self.cluster.run_id,
            options.nodes,
            options.heartbeat_interval_ms,
            options.election_timeout_min_ms,
            options.election_timeout_max_ms,
            options.snapshot_logs_since_last
        ));
        // Elections during the run: each moves the term on, and one that splits the vote
        // more than once. A leader kill needs one; more are elections nobody forced.
        let terms = self
            .cluster
            .highest_term()
            .await
            .saturating_sub(self.start_term);
        report
            .measurements
            .insert("raft_terms_advanced".to_owned(), terms as f64);
        if !self.failover.is_empty() {
            report.measurements.insert(
                "raft_terms_per_leader_kill".to_owned(),
                terms as f64 / self.failover.len() as f64,
            );
            add_failover(&mut report, &self.failover);
        }
        for entry in self.nemesis.timeline() {
            report
                .notes
                .push(format!("{:>9.3}s  {}", entry.at.as_secs_f64(), entry.event));
        }
        report.notes.extend(problems.iter().cloned());
        report.notes.push(format!(
            "test took {:.1}s",
            self.started.elapsed().as_secs_f64()
        ));
        let verdict = report.verdict();
        if !verdict.is_pass() {
            problems.push(format!(
                "checkers: {} ({})",
                verdict.name(),
                verdict.reason().unwrap_or_default()
            ));
        }
        if let Err(error) = report.write_to(&self.dir.path) {
            problems.push(format!("can't write the report: {error}"));
        }
        if let Err(error) = write_history(&self.dir.path, &history) {
            problems.push(format!("can't write the history: {error}"));
        }
        println!("{}", report.render_text());
        if problems.is_empty() && keep_logs() {
            self.cluster.save_logs();
        }
        if !problems.is_empty() {
            self.cluster.save_logs();
            panic!(
                "chaos {}/{} failed:\n  {}\nreport and container logs: {}",
                self.suite,
                self.test,
                problems.join("\n  "),
                self.dir.path.display()
            );
        }
    }

    /// Every member's final state, read at one applied index. A quiet cluster still writes
    /// now and then on its own (lookup records lingering up to 50 ms after the last lookup,
    /// audit flushes, ticks), and one landing between two members' reads would show as a
    /// difference that is not one: the reads are taken again, a bounded number of times,
    /// until every member answered at the same index. A real divergence stays and is
    /// reported by the convergence checker.
    async fn final_states(&self, keys: &BTreeSet<String>) -> Result<FinalStates> {
        /// Reads taken before one at a single applied index is given up on.
        const ATTEMPTS: u32 = 5;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let statuses = self.cluster.wait_converged(CONVERGE_TIMEOUT).await?;
            let index = statuses
                .values()
                .map(|status| status.applied_index)
                .max()
                .ok_or_else(|| HarnessError::Setup("no member answered".to_owned()))?;
            let finals = final_states(&self.cluster, index, keys).await?;
            let first = finals.nodes.first().map(|node| node.applied_index);
            let one_index = finals
                .nodes
                .iter()
                .all(|node| Some(node.applied_index) == first);
            if one_index || attempts >= ATTEMPTS {
                return Ok(finals);
            }
        }
    }
}

/// The failover measurements: write-back p50/p99/max in milliseconds and lookups failed
/// during the trials, with one note per trial.
fn add_failover(report: &mut Report, trials: &[FailoverTrial]) {
    let mut times: Vec<Duration> = trials.iter().map(|trial| trial.write_back).collect();
    times.sort();
    let millis = |duration: Duration| duration.as_secs_f64() * 1_000.0;
    let measurements = [
        ("failover_trials", trials.len() as f64),
        (
            "failover_write_back_p50_ms",
            millis(percentile(&times, 50.0)),
        ),
        (
            "failover_write_back_p99_ms",
            millis(percentile(&times, 99.0)),
        ),
        (
            "failover_write_back_max_ms",
            millis(times.last().copied().unwrap_or_default()),
        ),
        (
            "failover_lookups",
            trials.iter().map(|trial| trial.lookups).sum::<u64>() as f64,
        ),
        (
            "failover_lookups_failed",
            trials.iter().map(|trial| trial.failed_lookups).sum::<u64>() as f64,
        ),
        (
            "failover_slowest_lookup_ms",
            millis(
                trials
                    .iter()
                    .map(|trial| trial.slowest_lookup)
                    .max()
                    .unwrap_or_default(),
            ),
        ),
    ];
    for (name, value) in measurements {
        report.measurements.insert(name.to_owned(), value);
    }
    report
        .notes
        .extend(failover_report(trials).lines().map(str::to_owned));
}

/// The value at percentile `percent` (nearest rank) of sorted `values`.
pub fn percentile(sorted: &[Duration], percent: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The failover numbers: write-back time p50/p99/max and failed lookups, then each trial.
pub fn failover_report(trials: &[FailoverTrial]) -> String {
    let mut times: Vec<Duration> = trials.iter().map(|trial| trial.write_back).collect();
    times.sort();
    let lookups: u64 = trials.iter().map(|trial| trial.lookups).sum();
    let failed: u64 = trials.iter().map(|trial| trial.failed_lookups).sum();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "  {} trials: writes back after p50 {} ms, p99 {} ms, max {} ms; {failed} of {lookups} \
         lookups failed (failover client, killed leader first in its list)",
        trials.len(),
        percentile(&times, 50.0).as_millis(),
        percentile(&times, 99.0).as_millis(),
        times.last().copied().unwrap_or_default().as_millis(),
    );
    for (index, trial) in trials.iter().enumerate() {
        let _ = writeln!(
            text,
            "  trial {index:>2}: killed n{} -> leader n{}, writes back after {:>5} ms, {}/{} \
             lookups failed, slowest {} ms{}",
            trial.killed_leader,
            trial.new_leader,
            trial.write_back.as_millis(),
            trial.failed_lookups,
            trial.lookups,
            trial.slowest_lookup.as_millis(),
            if trial.lookup_failures.is_empty() {
                String::new()
            } else {
                format!(": {}", trial.lookup_failures.join("; "))
            }
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(10));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(20));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
