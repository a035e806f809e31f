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

use std::{process::ExitCode, time::Instant};

use anyhow::{bail, Context};
use tonic::transport::Channel;
use trunkline_api::v1::{self as proto, admin_service_client::AdminServiceClient};
use trunkline_bench::{
    dev_node::start_cluster,
    load::{connect, drive, end_calls, header, main_with, Answer, LoadArgs as Args, Report},
};

const DEMO_TENANT: &str = "demo";
const NUMBER: &str = "+14155550100";
/// Calls routed, then ended, in each round.
const ROUND_CALLS: usize = 100_000;

fn main() -> ExitCode {
    main_with("cdr_load", 100_000, |args| async move { run(&args).await })
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
    let disk_before = trunkline_bench::folder_bytes(&data);
    let index_before = applied_index(channel.clone()).await?;

    println!("{}", header(40));
    // In rounds, so the calls in progress at once stay far below the book's bound (as they
    // would with calls ending all the time).
    let (mut lookup_reports, mut end_reports) = (Vec::new(), Vec::new());
    let (mut lookup_entries, mut end_entries, mut ended) = (0, 0, 0);
    let mut index = index_before;
    for round in 0..args.calls.div_ceil(ROUND_CALLS) {
        let first = round * ROUND_CALLS;
        let calls: Vec<String> = (first..args.calls.min(first + ROUND_CALLS))
            .map(|call| format!("{call}@load"))
            .collect();
        let count = calls.len();
        let (lookup, routed) = lookups(&channels, args.concurrency, calls).await?;
        let after_lookups = applied_index(channel.clone()).await?;
        lookup_entries += after_lookups.saturating_sub(index);
        ended += routed.len();
        let end = end_calls(&channels, args.concurrency, routed, false).await?;
        index = applied_index(channel.clone()).await?;
        end_entries += index.saturating_sub(after_lookups);
        lookup_reports.push((lookup, count));
        end_reports.push(end);
    }
    let mean = |reports: &[Report]| {
        let rate = reports.iter().map(|r| r.per_second).sum::<f64>() / reports.len() as f64;
        let p50 = reports.iter().map(|r| r.p50).max().unwrap_or_default();
        let p99 = reports.iter().map(|r| r.p99).max().unwrap_or_default();
        (rate, p50, p99)
    };
    let lookups_only: Vec<Report> = lookup_reports.into_iter().map(|(r, _)| r).collect();
    for (label, reports) in [
        ("lookup (queues an in-progress record)", &lookups_only),
        ("call end (waits for its record)", &end_reports),
    ] {
        let (rate, p50, p99) = mean(reports);
        println!(
            "{label:<40} {rate:>10.0} {:>9} {:>9}   (mean rate; worst round's p50, p99)",
            format!("{p50:.2?}"),
            format!("{p99:.2?}")
        );
    }
    // Every call made two records: its lookup's and its end's.
    let records = (args.calls + ended) as f64;
    let entries = (lookup_entries + end_entries) as f64;
    println!(
        "Raft entries: {entries} for {records} records ({:.2} per 1,000; lookups {:.2}, ends \
         {:.2})",
        entries * 1_000.0 / records,
        lookup_entries as f64 * 1_000.0 / args.calls as f64,
        end_entries as f64 * 1_000.0 / ended.max(1) as f64,
    );

    let started = Instant::now();
    let exported = export(channel.clone()).await?;
    let elapsed = started.elapsed();
    println!(
        "export: {exported} archived records in {:.2?} ({:.0} records/s)",
        elapsed,
        exported as f64 / elapsed.as_secs_f64()
    );
    let rss_after = rss_bytes(nodes[0].pid)?;
    let disk_after = trunkline_bench::folder_bytes(&data);
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
    if exported < ended {
        bail!("{ended} calls were ended but only {exported} records were exported");
    }
    Ok(())
}

/// Lookups of the demo tenant for `calls`; each routed call's id and token.
async fn lookups(
    channels: &[Channel],
    concurrency: usize,
    calls: Vec<String>,
) -> anyhow::Result<(Report, Vec<(String, String)>)> {
    drive(
        channels,
        concurrency,
        calls,
        |mut client, call_id| async move {
            let request = proto::RouteOutboundRequest {
                tenant: DEMO_TENANT.to_owned(),
                call_id: call_id.clone(),
                to: NUMBER.to_owned(),
                from: "+12125550100".to_owned(),
                ..Default::default()
            };
            let answer = client.route_outbound(request).await?.into_inner();
            Ok(if answer.refusal.is_some() {
                Answer::Refused
            } else {
                Answer::Keep((call_id, answer.route_token))
            })
        },
    )
    .await
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
