//! Measures what the attacks of issue 10 do to a real `trunkline` process now that the
//! defences are in: the node's memory (VmRSS) and open file descriptors before, at the peak
//! of and after each attack, and how long outbound lookups take while it runs.
//!
//! Issue 10's closing note asks for measured numbers, not a test's pass/fail: "RSS under each
//! attack before and after; lookup p50/p99 under the attacks". The integration tests in
//! `crates/trunkline-node/tests/{limits,bounds,peer_input}.rs` check each bound on a small
//! scale with lowered limits; this binary runs the attacks at the scale of the original
//! findings against a release `trunkline dev` node with its default limits and prints one
//! table row per attack:
//!
//! a. baseline: nothing but the lookups;
//! b. slow bodies: requests that send most of a 4 MiB message and stall;
//! c. idle connections: more TCP connections than the node's cap, held without a request;
//! d. out of file descriptors: the node restarted under `prlimit --nofile=128:128` and
//!    flooded with connections (its CPU time, a connection opened before, a new client);
//! e. stalled watchers: WatchEvents streams never read while a big rate deck is replaced
//!    (after e0, the same replacements with no watcher, to tell the two apart);
//! f. stalled exports: ExportRates streams read once, then never again;
//! g. forged peer messages: AppendEntries and Vote of term `u64::MAX` from a node 99.
//!
//! A prober on its own thread and runtime (so the attack's client-side work does not delay
//! it) routes `+442071234567` for tenant `demo` at a fixed rate over its own connection.
//!
//! Usage: `attacks --trunkline PATH [--quick] [--deck-replacements N]`; `--quick` shrinks every
//! count for a smoke run; `--deck-replacements` (5 by default) shows whether the RSS of e0 and
//! e levels off.
//! Build and run:
//! `cargo build --release -p trunkline-node -p trunkline-bench &&
//!  $CARGO_TARGET_DIR/release/attacks --trunkline $CARGO_TARGET_DIR/release/trunkline`.
//! The idle-connection attack needs about 5,500 file descriptors in this process (`ulimit -n`).
//!
//! Exit codes: 0 every attack ran and the node lived through it, 1 the node died or the
//! tool could not run an attack, 2 bad arguments.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use openraft::{
    raft::{AppendEntriesRequest, VoteRequest},
    CommittedLeaderId, LogId, Vote,
};
use tokio::{io::AsyncReadExt, net::TcpStream, task::JoinSet};
use tonic::{
    codegen::{http, Bytes},
    transport::{Channel, Endpoint},
    Code,
};
use trunkline_api::v1::{
    self as proto, admin_service_client::AdminServiceClient,
    internal::raft_service_client::RaftServiceClient, route_service_client::RouteServiceClient,
};
use trunkline_bench::dev_node::Node;
use trunkline_store::TypeConfig;

const MIB: u64 = 1024 * 1024;
/// The demo tenant and a number its decks price (see the node's `demo.rs`).
const DEMO_TENANT: &str = "demo";
const PROBE_NUMBER: &str = "+442071234567";
/// The demo carrier whose deck the watcher and export attacks replace and export.
const DECK_CARRIER: &str = "atlas";
/// Lookups the prober sends a second.
const PROBES_PER_SECOND: u64 = 200;
/// A lookup slower than this counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Between the end of an attack and the "after" reading.
const SETTLE: Duration = Duration::from_secs(3);
/// How often the node's RSS and descriptors are read during an attack.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// Timeout of the tool's own admin calls (imports, status, writes).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows per StageRates chunk: the node's largest.
const ROWS_PER_CHUNK: usize = 5_000;
/// The largest request the client listener takes (`limits::API_MAX_MESSAGE_BYTES`).
const API_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// The node's fd limit in the out-of-descriptors attack.
const LOW_FD_LIMIT: u64 = 128;
/// A connection the node closes within this long after it was opened was refused (the
/// connection cap), not closed for idleness (60 s).
const REFUSED_WITHIN: Duration = Duration::from_secs(1);
/// Descriptors this process needs beyond the idle connections it holds.
const SPARE_FDS: u64 = 256;
/// Connections the watcher and export attacks spread their streams over.
const STREAM_CONNECTIONS: usize = 8;
/// Tasks sending forged peer messages at once.
const FORGERS: usize = 16;

/// How big each attack is; `--quick` shrinks it.
#[derive(Debug, Clone, Copy)]
struct Scale {
    baseline: Duration,
    slow_body_requests: usize,
    slow_body_connections: usize,
    slow_body_stall: Duration,
    idle_connections: usize,
    idle_hold: Duration,
    fd_flood_connections: usize,
    cpu_window: Duration,
    watch_streams: usize,
    deck_rows: usize,
    deck_replacements: usize,
    export_streams: usize,
    export_hold: Duration,
    forged_messages: usize,
}

impl Scale {
    /// The scale of the original findings.
    const FULL: Scale = Scale {
        baseline: Duration::from_secs(5),
        slow_body_requests: 1_000,
        slow_body_connections: 100,
        slow_body_stall: Duration::from_secs(10),
        idle_connections: 5_000,
        idle_hold: Duration::from_secs(10),
        fd_flood_connections: 200,
        cpu_window: Duration::from_secs(3),
        watch_streams: 80,
        deck_rows: 200_000,
        deck_replacements: 5,
        export_streams: 200,
        export_hold: Duration::from_secs(10),
        forged_messages: 10_000,
    };
    /// A smoke run of a minute or two.
    const QUICK: Scale = Scale {
        baseline: Duration::from_secs(2),
        slow_body_requests: 100,
        slow_body_connections: 10,
        slow_body_stall: Duration::from_secs(2),
        idle_connections: 500,
        idle_hold: Duration::from_secs(2),
        fd_flood_connections: 200,
        cpu_window: Duration::from_secs(2),
        watch_streams: 70,
        deck_rows: 20_000,
        deck_replacements: 2,
        export_streams: 24,
        export_hold: Duration::from_secs(2),
        forged_messages: 1_000,
    };
}

#[derive(Debug)]
struct Args {
    trunkline: PathBuf,
    quick: bool,
    /// Overrides the scale's deck replacements in e0 and e (to see whether RSS levels off).
    deck_replacements: Option<usize>,
}

fn parse_args(mut arguments: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut trunkline = None;
    let mut quick = false;
    let mut deck_replacements = None;
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--trunkline" => {
                trunkline = Some(PathBuf::from(
                    arguments.next().ok_or("--trunkline needs a path")?,
                ))
            }
            "--quick" => quick = true,
            "--deck-replacements" => {
                let count = arguments
                    .next()
                    .ok_or("--deck-replacements needs a count")?;
                deck_replacements = Some(
                    count
                        .parse()
                        .map_err(|_| format!("--deck-replacements: {count:?} is no count"))?,
                );
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let trunkline = trunkline.ok_or("--trunkline PATH is required")?;
    if !trunkline.is_file() {
        return Err(format!("{}: no such file", trunkline.display()));
    }
    Ok(Args {
        trunkline,
        quick,
        deck_replacements,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("attacks: {message}");
            }
            eprintln!("usage: attacks --trunkline PATH [--quick] [--deck-replacements N]");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("attacks: can't start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let mut reports = Vec::new();
    let result = runtime.block_on(run(&args, &mut reports));
    print_table(&reports);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("attacks: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs every attack in turn, pushing a report after each; fails when the node died.
async fn run(args: &Args, reports: &mut Vec<PhaseReport>) -> anyhow::Result<()> {
    let mut scale = if args.quick {
        Scale::QUICK
    } else {
        Scale::FULL
    };
    if let Some(count) = args.deck_replacements {
        scale.deck_replacements = count;
    }
    check_own_fd_limit(scale.idle_connections as u64 + SPARE_FDS)?;
    let folder = tempfile::tempdir().context("can't make a temporary folder")?;
    let result = run_attacks(args, scale, folder.path(), reports).await;
    if result.is_err() {
        // The node's log and data explain a failure: keep them.
        let kept = folder.keep();
        eprintln!(
            "attacks: the node's log and data are kept in {}",
            kept.display()
        );
    }
    result
}

/// Runs the attacks against nodes whose data and log are in `folder`.
async fn run_attacks(
    args: &Args,
    scale: Scale,
    folder: &Path,
    reports: &mut Vec<PhaseReport>,
) -> anyhow::Result<()> {
    let data_dir = folder.join("data");
    let log_path = folder.join("node.log");
    let mut node = Node::start(&args.trunkline, &data_dir, &log_path, None)?;
    eprintln!(
        "node pid {} api {} peer {}",
        node.pid, node.api_addr, node.peer_addr
    );
    let mut prober = Prober::start(&node.api_addr)?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let report = measure("a. baseline", &node, &prober, async {
        tokio::time::sleep(scale.baseline).await;
        Ok(String::new())
    })
    .await?;
    record(reports, report, &mut node)?;

    let report = measure(
        "b. slow bodies",
        &node,
        &prober,
        slow_bodies(&node.api_addr, scale),
    )
    .await?;
    record(reports, report, &mut node)?;

    let report = measure(
        "c. idle connections",
        &node,
        &prober,
        idle_connections(&node.api_addr, scale),
    )
    .await?;
    record(reports, report, &mut node)?;

    // The out-of-descriptors attack needs a node started under a low limit; the attacks
    // after it run on a node restarted on the same data with the ordinary limit.
    drop(prober);
    node.stop();
    let mut limited = Node::start(&args.trunkline, &data_dir, &log_path, Some(LOW_FD_LIMIT))?;
    let limited_prober = Prober::start(&limited.api_addr)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = out_of_descriptors(&limited, &limited_prober, scale).await?;
    record(reports, report, &mut limited)?;
    drop(limited_prober);
    limited.stop();
    let mut node = Node::start(&args.trunkline, &data_dir, &log_path, None)?;
    prober = Prober::start(&node.api_addr)?;

    // Set-up, not measured: the big deck the watcher and export attacks work on.
    let mut admin = admin_client(&node.api_addr)?;
    let started = Instant::now();
    import_deck(&mut admin, &big_deck(scale.deck_rows, 0)).await?;
    eprintln!(
        "set-up: imported {} rows for {DECK_CARRIER} in {:.1} s",
        scale.deck_rows,
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(SETTLE).await;

    let report = measure(
        "e0. deck replaced (control)",
        &node,
        &prober,
        deck_replaced_alone(&node, scale),
    )
    .await?;
    record(reports, report, &mut node)?;

    let report = measure(
        "e. stalled watchers",
        &node,
        &prober,
        stalled_watchers(&node, scale),
    )
    .await?;
    record(reports, report, &mut node)?;

    let report = measure(
        "f. stalled exports",
        &node,
        &prober,
        stalled_exports(&node.api_addr, scale),
    )
    .await?;
    record(reports, report, &mut node)?;

    let report = measure(
        "g. forged peer messages",
        &node,
        &prober,
        forged_peer_messages(&node, scale),
    )
    .await?;
    record(reports, report, &mut node)?;
    drop(prober);
    node.stop();
    Ok(())
}

/// Keeps `report`; fails (after keeping it) when the node is no longer running.
fn record(
    reports: &mut Vec<PhaseReport>,
    mut report: PhaseReport,
    node: &mut Node,
) -> anyhow::Result<()> {
    let alive = node.is_running();
    if !alive {
        report.notes.push_str("; NODE DIED");
    }
    eprintln!("{}", report.row());
    reports.push(report);
    if alive {
        Ok(())
    } else {
        bail!(
            "the node died during {:?}; the end of its log:\n{}",
            reports.last().map_or("", |report| report.name),
            node.log_tail()
        )
    }
}

/// Fails early, with the fix, when this process can't hold the idle connections.
fn check_own_fd_limit(needed: u64) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").context("/proc/self/limits")?;
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<u64>().ok())
        .ok_or_else(|| anyhow!("no open-file limit in /proc/self/limits"))?;
    if soft < needed {
        bail!(
            "this process may open {soft} files and the idle-connection attack needs {needed}: \
             run it after `ulimit -n {needed}` or under `prlimit --nofile={needed} --`"
        );
    }
    Ok(())
}

// ---- Reading the node's resources from /proc ----

/// The node's resident memory and open descriptors at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    rss_bytes: u64,
    fds: u64,
}

impl Usage {
    fn max(self, other: Usage) -> Usage {
        Usage {
            rss_bytes: self.rss_bytes.max(other.rss_bytes),
            fds: self.fds.max(other.fds),
        }
    }
}

fn usage(pid: u32) -> anyhow::Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("can't read /proc/{pid}/status: did the node die?"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("can't list /proc/{pid}/fd"))?
        .count() as u64;
    Ok(Usage {
        rss_bytes: rss_kib * 1024,
        fds,
    })
}

/// The node's user + system CPU time, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("can't read /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it start at the state.
    let after_name = stat
        .rfind(')')
        .and_then(|end| stat.get(end + 2..))
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 counting from the state.
    let field = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))
    };
    Ok(field(11)? + field(12)?)
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Runs `attack`, reading the node's usage every [`SAMPLE_INTERVAL`]; its result and the peak.
async fn with_peak<T>(
    pid: u32,
    attack: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, Usage)> {
    let mut peak = usage(pid)?;
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    tokio::pin!(attack);
    loop {
        tokio::select! {
            result = &mut attack => return Ok((result?, peak.max(usage(pid)?))),
            _ = ticks.tick() => peak = peak.max(usage(pid)?),
        }
    }
}

// ---- The lookup prober ----

/// One lookup: when it started, how long it took, and its error if it failed.
struct Sample {
    at: Instant,
    latency: Duration,
    error: Option<String>,
}

/// Routes [`PROBE_NUMBER`] [`PROBES_PER_SECOND`] times a second on a thread of its own.
struct Prober {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
}

impl Prober {
    fn start(api_addr: &str) -> anyhow::Result<Prober> {
        let endpoint = Endpoint::from_shared(format!("http://{api_addr}"))?
            .connect_timeout(PROBE_TIMEOUT)
            .tcp_nodelay(true);
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("can't start the prober's runtime")?;
        let (thread_samples, thread_stop) = (samples.clone(), stop.clone());
        std::thread::spawn(move || {
            runtime.block_on(probe(endpoint, thread_samples, thread_stop));
        });
        Ok(Prober { samples, stop })
    }

    /// Lookups started between `from` and `to`.
    fn stats(&self, from: Instant, to: Instant) -> LookupStats {
        let samples = match self.samples.lock() {
            Ok(samples) => samples,
            Err(poisoned) => poisoned.into_inner(),
        };
        let window = samples
            .iter()
            .filter(|sample| sample.at >= from && sample.at < to);
        let mut stats = LookupStats::default();
        let mut latencies = Vec::new();
        for sample in window {
            match &sample.error {
                None => latencies.push(sample.latency),
                Some(error) => {
                    stats.failures += 1;
                    stats.first_error.get_or_insert_with(|| error.clone());
                }
            }
        }
        latencies.sort_unstable();
        stats.succeeded = latencies.len();
        stats.p50 = percentile(&latencies, 50);
        stats.p99 = percentile(&latencies, 99);
        stats.max = latencies.last().copied();
        stats
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn probe(endpoint: Endpoint, samples: Arc<Mutex<Vec<Sample>>>, stop: Arc<AtomicBool>) {
    let mut client = RouteServiceClient::new(endpoint.connect_lazy());
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / PROBES_PER_SECOND));
    // A lookup that takes long is not followed by a burst that would hide it.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let mut request = tonic::Request::new(proto::RouteOutboundRequest {
            tenant: DEMO_TENANT.to_owned(),
            call_id: "attacks-probe".to_owned(),
            to: PROBE_NUMBER.to_owned(),
            ..Default::default()
        });
        request.set_timeout(PROBE_TIMEOUT);
        let at = Instant::now();
        let result = tokio::time::timeout(PROBE_TIMEOUT, client.route_outbound(request)).await;
        let latency = at.elapsed();
        let error = match result {
            Ok(Ok(response)) if response.get_ref().legs.is_empty() => {
                Some("an answer without legs".to_owned())
            }
            Ok(Ok(_)) => None,
            Ok(Err(status)) => Some(format!("{:?}: {}", status.code(), status.message())),
            Err(_) => Some(format!("no answer within {PROBE_TIMEOUT:?}")),
        };
        if let Ok(mut samples) = samples.lock() {
            samples.push(Sample { at, latency, error });
        }
    }
}

/// The `percent`th percentile of sorted `values` (nearest rank).
fn percentile(sorted: &[Duration], percent: usize) -> Option<Duration> {
    let rank = (sorted.len() * percent).div_ceil(100);
    sorted.get(rank.saturating_sub(1)).copied()
}

#[derive(Debug, Default)]
struct LookupStats {
    succeeded: usize,
    failures: usize,
    p50: Option<Duration>,
    p99: Option<Duration>,
    max: Option<Duration>,
    first_error: Option<String>,
}

// ---- Reports ----

/// What one attack did to the node.
struct PhaseReport {
    name: &'static str,
    before: Usage,
    peak: Usage,
    after: Usage,
    lookups: LookupStats,
    notes: String,
}

/// Runs one attack against `node`: usage before, at the peak of and [`SETTLE`] after it,
/// and the lookups made while it ran. `attack` returns the notes for the table.
async fn measure(
    name: &'static str,
    node: &Node,
    prober: &Prober,
    attack: impl std::future::Future<Output = anyhow::Result<String>>,
) -> anyhow::Result<PhaseReport> {
    eprintln!("{name} ...");
    let before = usage(node.pid)?;
    let started = Instant::now();
    let (notes, peak) = with_peak(node.pid, attack).await?;
    let ended = Instant::now();
    tokio::time::sleep(SETTLE).await;
    let after = usage(node.pid)?;
    Ok(PhaseReport {
        name,
        before,
        peak: peak.max(before),
        after,
        lookups: prober.stats(started, ended),
        notes,
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB as f64)
}

fn micros(duration: Option<Duration>) -> String {
    duration.map_or("-".to_owned(), |duration| duration.as_micros().to_string())
}

impl PhaseReport {
    fn columns(&self) -> [String; 6] {
        let lookups = &self.lookups;
        let mut notes = self.notes.clone();
        if let Some(error) = &lookups.first_error {
            let _ = write!(notes, "; first failed lookup: {error}");
        }
        [
            self.name.to_owned(),
            format!(
                "{} / {} / {}",
                mib(self.before.rss_bytes),
                mib(self.peak.rss_bytes),
                mib(self.after.rss_bytes)
            ),
            format!(
                "{} / {} / {}",
                self.before.fds, self.peak.fds, self.after.fds
            ),
            format!(
                "{} / {} / {}",
                micros(lookups.p50),
                micros(lookups.p99),
                micros(lookups.max)
            ),
            format!(
                "{} of {}",
                lookups.failures,
                lookups.failures + lookups.succeeded
            ),
            notes.trim_start_matches("; ").to_owned(),
        ]
    }

    fn row(&self) -> String {
        format!("| {} |", self.columns().join(" | "))
    }
}

fn print_table(reports: &[PhaseReport]) {
    let header = [
        "phase",
        "RSS MiB before / peak / after",
        "node fds before / peak / after",
        "lookup µs p50 / p99 / max",
        "lookups failed",
        "notes",
    ];
    let rows: Vec<[String; 6]> = reports.iter().map(PhaseReport::columns).collect();
    // Every column but the notes is padded to its widest cell.
    let mut widths = header.map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row.iter()).take(5) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| {
                if column == 5 {
                    cell.clone()
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    println!();
    line(header.iter().map(|title| (*title).to_owned()).collect());
    line(widths.iter().map(|width| "-".repeat(*width)).collect());
    for row in rows {
        line(row.to_vec());
    }
}

// ---- The attacks ----

/// Requests that announce a message just under the 4 MiB limit, send all but its last
/// 64 KiB and stall, many per connection. Before the body budget, 1,000 of them took a node
/// from 20 MB to 2.97 GB, and 2.4 GB stayed after they closed.
async fn slow_bodies(api_addr: &str, scale: Scale) -> anyhow::Result<String> {
    let message_bytes = API_MAX_MESSAGE_BYTES - 1024;
    let sent_bytes = message_bytes - 64 * 1024;
    // One shared buffer: the slices h2 queues are not copies.
    let zeros = Bytes::from(vec![0u8; message_bytes]);
    let mut header = vec![0u8];
    header.extend_from_slice(&u32::try_from(message_bytes)?.to_be_bytes());
    let header = Bytes::from(header);
    let per_connection = scale
        .slow_body_requests
        .div_ceil(scale.slow_body_connections);
    let mut held = Vec::new();
    let mut responses = Vec::new();
    let mut senders = Vec::new();
    let mut send_failures = 0;
    for _ in 0..scale.slow_body_connections {
        let tcp = TcpStream::connect(api_addr).await?;
        let (mut sender, connection) = h2::client::handshake(tcp).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        for _ in 0..per_connection {
            if responses.len() + send_failures == scale.slow_body_requests {
                break;
            }
            sender = sender.ready().await?;
            let request = http::Request::builder()
                .method("POST")
                .uri(format!(
                    "http://{api_addr}/trunkline.v1.AdminService/SetSetting"
                ))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())?;
            let (response, mut stream) = sender.send_request(request, false)?;
            let sent = stream
                .send_data(header.clone(), false)
                .and_then(|()| stream.send_data(zeros.slice(..sent_bytes), false));
            match sent {
                Ok(()) => {
                    held.push(stream);
                    responses.push(response);
                }
                Err(_) => send_failures += 1,
            }
        }
        senders.push(sender);
    }
    tokio::time::sleep(scale.slow_body_stall).await;

    // How the node answered while the bodies stalled.
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for response in responses {
        let answer = match tokio::time::timeout(Duration::from_millis(10), response).await {
            Err(_) => "pending".to_owned(),
            Ok(Err(error)) => format!("reset ({error})"),
            Ok(Ok(response)) => {
                match response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                {
                    Some("8") => "RESOURCE_EXHAUSTED".to_owned(),
                    Some(code) => format!("grpc-status {code}"),
                    None => "answered, status in trailers".to_owned(),
                }
            }
        };
        *answers.entry(answer).or_default() += 1;
    }
    drop(held);
    drop(senders);
    let answers: Vec<String> = answers
        .iter()
        .map(|(answer, count)| format!("{count} {answer}"))
        .collect();
    Ok(format!(
        "{} requests of {:.1} MiB sent on {} connections, stalled {:?}: {}{}",
        scale.slow_body_requests,
        sent_bytes as f64 / MIB as f64,
        scale.slow_body_connections,
        scale.slow_body_stall,
        answers.join(", "),
        if send_failures > 0 {
            format!(", {send_failures} could not be sent")
        } else {
            String::new()
        }
    ))
}

/// Reads from `stream` until the node closes it: when, or `None` if it was still open at
/// `deadline`.
async fn time_to_close(
    mut stream: TcpStream,
    opened: Instant,
    deadline: tokio::time::Instant,
) -> Option<Duration> {
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// TCP connections that never send a request, more than the node's connection cap (2,048):
/// the node must close those beyond the cap at once and keep serving lookups.
async fn idle_connections(api_addr: &str, scale: Scale) -> anyhow::Result<String> {
    let mut opened = Vec::new();
    let mut connect_failures = 0;
    let mut first_connect_error = None;
    for _ in 0..scale.idle_connections {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(api_addr)).await {
            Ok(Ok(stream)) => opened.push((stream, Instant::now())),
            Ok(Err(error)) => {
                connect_failures += 1;
                first_connect_error.get_or_insert_with(|| error.to_string());
            }
            Err(_) => {
                connect_failures += 1;
                first_connect_error.get_or_insert_with(|| "connect timed out".to_owned());
            }
        }
    }
    let deadline = tokio::time::Instant::now() + scale.idle_hold;
    let mut waits = JoinSet::new();
    for (stream, at) in opened {
        waits.spawn(time_to_close(stream, at, deadline));
    }
    let (mut refused, mut closed_later, mut kept) = (0, 0, 0);
    while let Some(closed) = waits.join_next().await {
        match closed? {
            Some(after) if after < REFUSED_WITHIN => refused += 1,
            Some(_) => closed_later += 1,
            None => kept += 1,
        }
    }
    let mut notes = format!(
        "{} opened: {refused} closed by the node within {REFUSED_WITHIN:?} (over the cap), \
         {kept} kept open for {:?} (the cap is 2048, less the node's other connections)",
        scale.idle_connections, scale.idle_hold
    );
    if closed_later > 0 {
        let _ = write!(notes, ", {closed_later} closed later");
    }
    if connect_failures > 0 {
        let _ = write!(
            notes,
            ", {connect_failures} failed to connect ({})",
            first_connect_error.unwrap_or_default()
        );
    }
    Ok(notes)
}

/// The node (already restarted under `prlimit --nofile=128:128`) flooded with more
/// connections than it has descriptors: every accept fails with EMFILE. Before the back-off
/// the accept loop spun a core; a connection opened before must go on being served, and a
/// new client once the flood is gone.
async fn out_of_descriptors(
    node: &Node,
    prober: &Prober,
    scale: Scale,
) -> anyhow::Result<PhaseReport> {
    let name = "d. out of descriptors";
    eprintln!("{name} ...");
    let pid = node.pid;
    let before = usage(pid)?;
    let started = Instant::now();
    let attack = async {
        let mut flood = Vec::new();
        let mut connect_failures = 0;
        for _ in 0..scale.fd_flood_connections {
            match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&node.api_addr))
                .await
            {
                Ok(Ok(stream)) => flood.push(stream),
                _ => connect_failures += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ticks_before = cpu_ticks(pid)?;
        tokio::time::sleep(scale.cpu_window).await;
        let cpu_seconds = (cpu_ticks(pid)? - ticks_before) as f64 / clock_ticks_per_second() as f64;
        let flooded = Instant::now();
        drop(flood);

        // A new client (a new connection) once the flood is gone.
        let closed = Instant::now();
        let served_after = loop {
            if new_client_lookup(&node.api_addr).await.is_ok() {
                break Some(closed.elapsed());
            }
            if closed.elapsed() > Duration::from_secs(15) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        anyhow::Ok((cpu_seconds, connect_failures, flooded, served_after))
    };
    let ((cpu_seconds, connect_failures, flooded, served_after), peak) =
        with_peak(pid, attack).await?;
    let ended = Instant::now();
    tokio::time::sleep(SETTLE).await;
    let after = usage(pid)?;
    let during_flood = prober.stats(started, flooded);
    let mut notes = format!(
        "node fd limit {LOW_FD_LIMIT}, {} connections ({connect_failures} failed to connect): \
         node CPU {cpu_seconds:.2} s over {:?}; the prober's connection (opened before): \
         {} lookups answered, {} failed during the flood; ",
        scale.fd_flood_connections, scale.cpu_window, during_flood.succeeded, during_flood.failures,
    );
    match served_after {
        Some(after) => {
            let _ = write!(
                notes,
                "a new client served {} ms after the flood closed",
                after.as_millis()
            );
        }
        None => notes.push_str("NO new client served within 15 s after the flood closed"),
    }
    if node.log().contains("can't accept connections") {
        notes.push_str("; the node logged that it can't accept connections");
    }
    Ok(PhaseReport {
        name,
        before,
        peak: peak.max(before),
        after,
        lookups: prober.stats(started, ended),
        notes,
    })
}

/// One RouteOutbound on a connection of its own.
async fn new_client_lookup(api_addr: &str) -> anyhow::Result<()> {
    let channel = Endpoint::from_shared(format!("http://{api_addr}"))?
        .connect_timeout(PROBE_TIMEOUT)
        .timeout(PROBE_TIMEOUT)
        .connect()
        .await?;
    RouteServiceClient::new(channel)
        .route_outbound(proto::RouteOutboundRequest {
            tenant: DEMO_TENANT.to_owned(),
            call_id: "attacks-new-client".to_owned(),
            to: PROBE_NUMBER.to_owned(),
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// WatchEvents streams, more than the node allows (64), that are never read, while the big
/// deck is replaced again and again. Before, each stalled watcher pinned the state it was
/// sending from: +210 MB per replaced 1M-row deck, 1.25 GB after five.
async fn stalled_watchers(node: &Node, scale: Scale) -> anyhow::Result<String> {
    let channels = channels(&node.api_addr, STREAM_CONNECTIONS)?;
    let mut held = Vec::new();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..scale.watch_streams {
        let mut client = AdminServiceClient::new(channels[index % channels.len()].clone());
        let request = proto::WatchEventsRequest {
            after_index: 0,
            recent: 1000,
            follow: true,
        };
        match tokio::time::timeout(Duration::from_secs(5), client.watch_events(request)).await {
            Ok(Ok(stream)) => held.push(stream.into_inner()),
            Ok(Err(status)) => *refusals.entry(code_name(status.code())).or_default() += 1,
            Err(_) => *refusals.entry("no answer in 5 s".to_owned()).or_default() += 1,
        }
    }
    let rss_after_each = replace_deck(node, scale, 100).await?;
    // A stream the node accepted and then ended with an error was refused late.
    let mut open = 0;
    for mut stream in held {
        match tokio::time::timeout(Duration::from_millis(10), stream.message()).await {
            Ok(Err(status)) => {
                *refusals
                    .entry(format!("{} after opening", code_name(status.code())))
                    .or_default() += 1
            }
            Ok(Ok(None)) => *refusals.entry("ended".to_owned()).or_default() += 1,
            Ok(Ok(Some(_))) | Err(_) => open += 1,
        }
    }
    drop(channels);
    let refusals: Vec<String> = refusals
        .iter()
        .map(|(what, count)| format!("{count} {what}"))
        .collect();
    Ok(format!(
        "{} watch streams opened, never read: {open} open, {}; deck of {} rows replaced {} \
         times, RSS MiB after each: {}",
        scale.watch_streams,
        if refusals.is_empty() {
            "none refused".to_owned()
        } else {
            refusals.join(", ")
        },
        scale.deck_rows,
        scale.deck_replacements,
        rss_after_each.join(", ")
    ))
}

/// The control for [`stalled_watchers`]: the big deck replaced as often with no watcher, so
/// what the store, the index and the allocator keep anyway can be told from what watchers
/// make the node hold.
async fn deck_replaced_alone(node: &Node, scale: Scale) -> anyhow::Result<String> {
    let rss_after_each = replace_deck(node, scale, 0).await?;
    Ok(format!(
        "no watcher; deck of {} rows replaced {} times, RSS MiB after each: {}",
        scale.deck_rows,
        scale.deck_replacements,
        rss_after_each.join(", ")
    ))
}

/// Replaces the big deck `scale.deck_replacements` times with new prices (salted from
/// `first_salt` on); the node's RSS in MiB after each.
async fn replace_deck(node: &Node, scale: Scale, first_salt: u64) -> anyhow::Result<Vec<String>> {
    let mut admin = admin_client(&node.api_addr)?;
    let mut rss_after_each = Vec::new();
    for replacement in 1..=scale.deck_replacements as u64 {
        let started = Instant::now();
        import_deck(
            &mut admin,
            &big_deck(scale.deck_rows, first_salt + replacement),
        )
        .await
        .with_context(|| {
            format!(
                "replacement {replacement} of the deck failed after {:.1} s; RSS MiB after \
                     each one before: {}",
                started.elapsed().as_secs_f64(),
                rss_after_each.join(", ")
            )
        })?;
        rss_after_each.push(mib(usage(node.pid)?.rss_bytes));
    }
    Ok(rss_after_each)
}

/// ExportRates streams of the big deck, more than the node allows (16), each read once and
/// then left. Before, every stalled export held the deck it was exporting: +320 MB.
async fn stalled_exports(api_addr: &str, scale: Scale) -> anyhow::Result<String> {
    let channels = channels(api_addr, STREAM_CONNECTIONS)?;
    let mut held = Vec::new();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..scale.export_streams {
        let mut client = AdminServiceClient::new(channels[index % channels.len()].clone());
        let request = proto::ExportRatesRequest {
            carrier: DECK_CARRIER.to_owned(),
            consistency: None,
        };
        let opened = tokio::time::timeout(Duration::from_secs(5), async {
            let mut stream = client.export_rates(request).await?.into_inner();
            let first = stream.message().await?;
            Ok::<_, tonic::Status>((stream, first))
        })
        .await;
        match opened {
            Ok(Ok((stream, Some(_)))) => held.push(stream),
            Ok(Ok((_, None))) => *refusals.entry("empty".to_owned()).or_default() += 1,
            Ok(Err(status)) => *refusals.entry(code_name(status.code())).or_default() += 1,
            Err(_) => *refusals.entry("no chunk in 5 s".to_owned()).or_default() += 1,
        }
    }
    tokio::time::sleep(scale.export_hold).await;
    let open = held.len();
    drop(held);
    drop(channels);
    let refusals: Vec<String> = refusals
        .iter()
        .map(|(what, count)| format!("{count} {what}"))
        .collect();
    Ok(format!(
        "{} exports of {DECK_CARRIER} ({} rows), one chunk read each then held {:?}: {open} \
         open, {}",
        scale.export_streams,
        scale.deck_rows,
        scale.export_hold,
        if refusals.is_empty() {
            "none refused".to_owned()
        } else {
            refusals.join(", ")
        }
    ))
}

/// Forged Raft messages on the peer listener from a stranger that knows only the cluster
/// name: AppendEntries and Vote of term `u64::MAX` naming a leader 99. Before the peer
/// checks one such message made the node follow a leader that does not exist and panic at
/// the next election.
async fn forged_peer_messages(node: &Node, scale: Scale) -> anyhow::Result<String> {
    let mut admin = admin_client(&node.api_addr)?;
    let status_before = cluster_status(&mut admin).await?;
    let cluster_name = status_before.cluster_name.clone();
    let forged_vote = Vote::new_committed(u64::MAX, 99);
    let append = bincode::serialize(&AppendEntriesRequest::<TypeConfig> {
        vote: forged_vote,
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    })?;
    let vote = bincode::serialize(&VoteRequest::<u64>::new(
        Vote::new(u64::MAX, 99),
        Some(LogId::new(CommittedLeaderId::new(u64::MAX, 99), 1 << 40)),
    ))?;
    let channel = Endpoint::from_shared(format!("http://{}", node.peer_addr))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut forgers = JoinSet::new();
    for forger in 0..FORGERS {
        let mut client = RaftServiceClient::new(channel.clone());
        let (append, vote, cluster_name) = (append.clone(), vote.clone(), cluster_name.clone());
        let count =
            scale.forged_messages / FORGERS + usize::from(forger < scale.forged_messages % FORGERS);
        forgers.spawn(async move {
            let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
            for index in 0..count {
                let payload = if index % 2 == 0 { &append } else { &vote };
                let mut request = tonic::Request::new(proto::internal::RaftPayload {
                    cluster_name: cluster_name.clone(),
                    payload: payload.clone(),
                });
                request.set_timeout(Duration::from_secs(5));
                let result = if index % 2 == 0 {
                    client.append_entries(request).await
                } else {
                    client.vote(request).await
                };
                let outcome = match result {
                    Ok(_) => "ACCEPTED".to_owned(),
                    Err(status) => code_name(status.code()),
                };
                *outcomes.entry(outcome).or_default() += 1;
            }
            outcomes
        });
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(finished) = forgers.join_next().await {
        for (outcome, count) in finished? {
            *outcomes.entry(outcome).or_default() += count;
        }
    }
    let status_after = cluster_status(&mut admin).await?;
    let write = admin
        .set_setting(proto::SetSettingRequest {
            key: "attacks-after-forgery".to_owned(),
            value: "written".to_owned(),
        })
        .await;
    let outcomes: Vec<String> = outcomes
        .iter()
        .map(|(outcome, count)| format!("{count} {outcome}"))
        .collect();
    Ok(format!(
        "{} forged (AppendEntries / Vote, term u64::MAX, leader 99): {}; \
         refused_peer_messages {} -> {}; term {} -> {}, leader {} -> {}; a write after: {}",
        scale.forged_messages,
        outcomes.join(", "),
        status_before.refused_peer_messages,
        status_after.refused_peer_messages,
        status_before.term,
        status_after.term,
        status_before.leader_id,
        status_after.leader_id,
        match write {
            Ok(_) => "succeeded".to_owned(),
            Err(status) => format!("FAILED ({:?}: {})", status.code(), status.message()),
        }
    ))
}

// ---- Clients, decks and imports ----

fn code_name(code: Code) -> String {
    format!("{code:?}")
}

/// `count` separate connections to the client listener.
fn channels(api_addr: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint = Endpoint::from_shared(format!("http://{api_addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    Ok((0..count).map(|_| endpoint.connect_lazy()).collect())
}

fn admin_client(api_addr: &str) -> anyhow::Result<AdminServiceClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{api_addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(ADMIN_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(AdminServiceClient::new(channel))
}

async fn cluster_status(
    admin: &mut AdminServiceClient<Channel>,
) -> anyhow::Result<proto::ClusterStatusResponse> {
    Ok(admin
        .cluster_status(proto::ClusterStatusRequest {})
        .await?
        .into_inner())
}

/// A deck of `rows` rows for [`DECK_CARRIER`]: the `44` prefix the prober's number needs,
/// then unassigned `99` prefixes; `salt` changes every price, so each import is a new deck.
fn big_deck(rows: usize, salt: u64) -> Vec<proto::Rate> {
    let rate = |prefix: String, index: u64| proto::Rate {
        prefix,
        rate_micros_per_minute: 5_000 + (index * 7 + salt * 131) % 5_000,
        connect_fee_micros: 0,
        description: format!("attack deck {salt} row {index}"),
        effective_from_ms: 0,
        effective_until_ms: 0,
    };
    let mut deck = vec![rate("44".to_owned(), 0)];
    deck.extend((1..rows as u64).map(|index| rate(format!("99{index:07}"), index)));
    deck
}

/// A 32-hex-digit random token (import ids and owner tokens).
fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Stages `rows` in chunks and commits them as the carrier's whole deck, as
/// `trunkctl rates import --replace` does.
async fn import_deck(
    admin: &mut AdminServiceClient<Channel>,
    rows: &[proto::Rate],
) -> anyhow::Result<()> {
    let import_id = random_token();
    let owner = random_token();
    for (chunk, rates) in rows.chunks(ROWS_PER_CHUNK).enumerate() {
        admin
            .stage_rates(proto::StageRatesRequest {
                carrier: DECK_CARRIER.to_owned(),
                import_id: import_id.clone(),
                rates: rates.to_vec(),
                first_line: (chunk * ROWS_PER_CHUNK + 1) as u64,
                owner: owner.clone(),
            })
            .await
            .with_context(|| format!("staging chunk {chunk} of the deck"))?;
    }
    let committed = admin
        .commit_rates(proto::CommitRatesRequest {
            carrier: DECK_CARRIER.to_owned(),
            import_id,
            replace: true,
            expected_rows: rows.len() as u64,
            owner,
        })
        .await
        .context("committing the deck")?
        .into_inner();
    if committed.deck_rows != rows.len() as u64 {
        bail!(
            "the committed deck has {} rows, {} were sent",
            committed.deck_rows,
            rows.len()
        );
    }
    Ok(())
}
