//! What call detail records cost, measured against a real `trunkline dev` node (or a cluster
//! of real processes with `--nodes 3`, the callers spread over them): N calls of the demo
//! tenant are routed (each lookup queues an in-progress record) and ended
//! (`ReportCallEnd` answers once the call's whole record is applied); then the node's
//! archive is exported whole through `ListCdrs`.
//!
//! Printed: lookups and ends per second with p50/p99 (the ends are the acknowledged record
//! rate), Raft entries per 1,000 records (from the applied index), the node's resident memory
//! and data folder growth per million records, and the export rate.
//!
//! Memory and disk are node 1's (every node holds the same archive).
//!
//! Usage: `cdr_load --trunkline PATH [--calls N] [--concurrency N] [--nodes N]` (100,000
//! calls, 64 callers, one node by default). Build and run:
//! `cargo build --release -p trunkline-node -p trunkline-bench &&
//!  $CARGO_TARGET_DIR/release/cdr_load --trunkline $CARGO_TARGET_DIR/release/trunkline`.
//!
//! Exit codes: 0 measured, 1 the node or a request failed, 2 bad arguments.

use std::{path::Path, process::ExitCode, sync::Arc, time::Instant};

use anyhow::{bail, Context};
use tokio::task::JoinSet;
use tonic::transport::Channel;
use trunkline_api::v1::{
    self as proto, admin_service_client::AdminServiceClient,
    route_service_client::RouteServiceClient,
};
use trunkline_bench::{
    dev_node::start_cluster,
    load::{connect, header, parse_args, report, LoadArgs as Args, Report},
};

const DEMO_TENANT: &str = "demo";
const NUMBER: &str = "+14155550100";

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1), 100_000) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("cdr_load: {message}");
            eprintln!("usage: cdr_load --trunkline PATH [--calls N] [--concurrency N] [--nodes N]");
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
            eprintln!("cdr_load: can't start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cdr_load: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kilobytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse::<u64>().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kilobytes * 1024)
}

/// Bytes of every file under `path`.
fn folder_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => folder_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn applied_index(channel: Channel) -> anyhow::Result<u64> {
    let status = AdminServiceClient::new(channel)
        .cluster_status(proto::ClusterStatusRequest::default())
        .await?
        .into_inner();
    Ok(status.applied_index)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let folder = tempfile::tempdir().context("can't make a temporary folder")?;
    let mut nodes = start_cluster(&args.trunkline, folder.path(), args.nodes as u64).await?;
    let data = folder.path().join("node-1");
    let channels = connect(&nodes).await?;
    let channel = channels[0].clone();
    println!(
        "{} calls, {} at once, {} node(s) on loopback (real processes)",
        args.calls, args.concurrency, args.nodes
    );
    let rss_before = rss_bytes(nodes[0].pid)?;
    let disk_before = folder_bytes(&data);
    let index_before = applied_index(channel.clone()).await?;

    println!("{}", header(40));
    let (lookup, routed) = lookups(&channels, args).await?;
    println!("{:<40} {lookup}", "lookup (queues an in-progress record)");
    let index_after_lookups = applied_index(channel.clone()).await?;
    let ended = routed.len();
    let (end, ()) = ends(&channels, routed, args.concurrency).await?;
    println!("{:<40} {end}", "call end (waits for its record)");
    let index_after = applied_index(channel.clone()).await?;
    // Every call made two records: its lookup's and its end's.
    let records = (args.calls + ended) as f64;
    let entries = index_after.saturating_sub(index_before) as f64;
    println!(
        "Raft entries: {} for {} records ({:.2} per 1,000; lookups {:.2}, ends {:.2})",
        entries,
        records,
        entries * 1_000.0 / records,
        index_after_lookups.saturating_sub(index_before) as f64 * 1_000.0 / args.calls as f64,
        index_after.saturating_sub(index_after_lookups) as f64 * 1_000.0 / ended.max(1) as f64,
    );

    let started = Instant::now();
    let exported = export(channel.clone()).await?;
    let elapsed = started.elapsed();
    println!(
        "export: {exported} archived records in {:.2?} ({:.0} records/s)",
        elapsed,
        exported as f64 / elapsed.as_secs_f64()
    );
    if exported < ended {
        bail!("{ended} calls were ended but only {exported} records were exported");
    }
    let rss_after = rss_bytes(nodes[0].pid)?;
    let disk_after = folder_bytes(&data);
    let per_million = 1_000_000.0 / exported as f64;
    println!(
        "node memory: {} -> {} ({} per million archived records)",
        mib(rss_before as f64),
        mib(rss_after as f64),
        mib((rss_after as f64 - rss_before as f64) * per_million)
    );
    println!(
        "data folder: {} -> {} ({} per million archived records, log and snapshots included)",
        mib(disk_before as f64),
        mib(disk_after as f64),
        mib((disk_after as f64 - disk_before as f64) * per_million)
    );
    for node in &mut nodes {
        node.stop();
    }
    Ok(())
}

/// `calls` lookups of the demo tenant from `concurrency` callers; each routed call's id and
/// token.
async fn lookups(
    channels: &[Channel],
    args: &Args,
) -> anyhow::Result<(Report, Vec<(String, String)>)> {
    let per_caller = args.calls.div_ceil(args.concurrency);
    let started = Instant::now();
    let mut callers = JoinSet::new();
    for caller in 0..args.concurrency {
        let mut client = RouteServiceClient::new(channels[caller % channels.len()].clone());
        callers.spawn(async move {
            let mut times = Vec::with_capacity(per_caller);
            let mut routed = Vec::with_capacity(per_caller);
            let mut refused = 0;
            for call in 0..per_caller {
                let call_id = format!("{caller}-{call}@load");
                let request = proto::RouteOutboundRequest {
                    tenant: DEMO_TENANT.to_owned(),
                    call_id: call_id.clone(),
                    to: NUMBER.to_owned(),
                    from: "+12125550100".to_owned(),
                    ..Default::default()
                };
                let sent = Instant::now();
                let answer = client.route_outbound(request).await?.into_inner();
                times.push(sent.elapsed());
                if answer.refusal.is_some() {
                    refused += 1;
                } else {
                    routed.push((call_id, answer.route_token));
                }
            }
            anyhow::Ok((times, routed, refused))
        });
    }
    let (mut times, mut routed, mut refused) = (Vec::new(), Vec::new(), 0);
    while let Some(result) = callers.join_next().await {
        let (caller_times, caller_routed, caller_refused) = result??;
        times.extend(caller_times);
        routed.extend(caller_routed);
        refused += caller_refused;
    }
    Ok((report(times, started.elapsed(), refused), routed))
}

/// A ReportCallEnd (answered, a minute of talk) for each routed call.
async fn ends(
    channels: &[Channel],
    routed: Vec<(String, String)>,
    concurrency: usize,
) -> anyhow::Result<(Report, ())> {
    let routed = Arc::new(routed);
    let started = Instant::now();
    let mut callers = JoinSet::new();
    for caller in 0..concurrency {
        let mut client = RouteServiceClient::new(channels[caller % channels.len()].clone());
        let routed = routed.clone();
        callers.spawn(async move {
            let mut times = Vec::new();
            for (call_id, token) in routed.iter().skip(caller).step_by(concurrency) {
                let request = proto::ReportCallEndRequest {
                    call_id: call_id.clone(),
                    route_token: token.clone(),
                    answered: true,
                    answer_time_ms: 1_796_000_000_000,
                    end_time_ms: 1_796_000_060_000,
                };
                let sent = Instant::now();
                client.report_call_end(request).await?;
                times.push(sent.elapsed());
            }
            anyhow::Ok(times)
        });
    }
    let mut times = Vec::new();
    while let Some(result) = callers.join_next().await {
        times.extend(result??);
    }
    Ok((report(times, started.elapsed(), 0), ()))
}

/// Streams the whole archive; the number of records.
async fn export(channel: Channel) -> anyhow::Result<usize> {
    let mut stream = AdminServiceClient::new(channel)
        .list_cdrs(proto::ListCdrsRequest::default())
        .await?
        .into_inner();
    let mut count = 0;
    while let Some(chunk) = stream.message().await? {
        count += chunk.records.len();
    }
    Ok(count)
}
