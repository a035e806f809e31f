//! What usage limits cost a lookup, measured against a real `trunkline dev` node: RouteOutbound
//! latency (p50, p99, worst) and calls per second for the demo tenant without limits (the
//! lookup never leaves the node) and for a copy of it with limits (each lookup is an admission
//! written through Raft, batched by the node), at a fixed number of concurrent callers; then
//! ReportCallEnd for every admitted call.
//!
//! The limits are set high enough never to refuse, so every limited lookup is a real
//! admission. The node is one process on loopback: a cluster adds one network round trip to
//! the leader and a quorum's fsync to each admission batch.
//!
//! Usage: `limits_load --trunkline PATH [--calls N] [--concurrency N] [--nodes N]` (20,000
//! calls, 64 callers, one node by default; `--nodes 3` spreads the callers over a cluster of
//! three real processes). Build and run:
//! `cargo build --release -p trunkline-node -p trunkline-bench &&
//!  $CARGO_TARGET_DIR/release/limits_load --trunkline $CARGO_TARGET_DIR/release/trunkline`.
//!
//! Exit codes: 0 measured, 1 the node or a request failed, 2 bad arguments.

use std::process::ExitCode;

use anyhow::{bail, Context};
use tonic::transport::Channel;
use trunkline_api::v1::{self as proto, admin_service_client::AdminServiceClient};
use trunkline_bench::{
    dev_node::start_cluster,
    load::{connect, drive, end_calls, header, main_with, Answer, LoadArgs as Args, Report},
};

/// The demo tenant (see the node's `demo.rs`) and a number its decks price.
const DEMO_TENANT: &str = "demo";
const LIMITED_TENANT: &str = "demo-limited";
const NUMBER: &str = "+14155550100";

fn main() -> ExitCode {
    main_with(
        "limits_load",
        20_000,
        |args| async move { run(&args).await },
    )
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let folder = tempfile::tempdir().context("can't make a temporary folder")?;
    let mut nodes = start_cluster(&args.trunkline, folder.path(), args.nodes as u64).await?;
    let channels = connect(&nodes).await?;
    let channel = channels[0].clone();
    add_limited_tenant(channel.clone()).await?;
    println!(
        "{} calls per tenant, {} at once, {} node(s) on loopback (real processes)",
        args.calls, args.concurrency, args.nodes
    );
    println!("{}", header(34));
    for (label, tenant) in [
        ("lookup, tenant without limits", DEMO_TENANT),
        ("lookup + admission, with limits", LIMITED_TENANT),
    ] {
        let (report, admitted) = lookups(&channels, tenant, args).await?;
        println!("{label:<34} {report}");
        if tenant == LIMITED_TENANT {
            let report = end_calls(&channels, args.concurrency, admitted, true).await?;
            println!("{:<34} {report}", "call end (release and book)");
        }
    }
    for node in &mut nodes {
        node.stop();
    }
    Ok(())
}

/// A copy of the demo tenant with limits that never refuse here.
async fn add_limited_tenant(channel: Channel) -> anyhow::Result<()> {
    let mut admin = AdminServiceClient::new(channel);
    let listing = admin
        .list_routing(proto::ListRoutingRequest::default())
        .await?
        .into_inner();
    let Some(mut tenant) = listing
        .tenants
        .into_iter()
        .find(|tenant| tenant.name == DEMO_TENANT)
    else {
        bail!("the dev node has no {DEMO_TENANT} tenant");
    };
    tenant.name = LIMITED_TENANT.to_owned();
    tenant.limits = Some(proto::TenantLimits {
        tenant: Some(proto::UsageLimits {
            concurrent_calls: Some(1_000_000),
            calls_per_day: Some(10_000_000),
            ..Default::default()
        }),
        ..Default::default()
    });
    admin
        .put_tenant(proto::PutTenantRequest {
            tenant: Some(tenant),
            mode: proto::PutMode::Create.into(),
        })
        .await?;
    Ok(())
}

/// `calls` lookups for `tenant`; the admitted calls' ids and tokens.
async fn lookups(
    channels: &[Channel],
    tenant: &'static str,
    args: &Args,
) -> anyhow::Result<(Report, Vec<(String, String)>)> {
    let calls: Vec<usize> = (0..args.calls).collect();
    drive(
        channels,
        args.concurrency,
        calls,
        move |mut client, call| async move {
            let call_id = format!("{tenant}-{call}@load");
            let request = proto::RouteOutboundRequest {
                tenant: tenant.to_owned(),
                call_id: call_id.clone(),
                to: NUMBER.to_owned(),
                ..Default::default()
            };
            let answer = client.route_outbound(request).await?.into_inner();
            Ok(if answer.refusal.is_some() {
                Answer::Refused
            } else if answer.max_duration_ms > 0 {
                Answer::Keep((call_id, answer.route_token))
            } else {
                Answer::Done
            })
        },
    )
    .await
}
