//! One file per `loadgen` subcommand, each with its flags and an `exec`; and what several
//! share: gRPC connections spread over nodes, and printing a run's result.

pub mod cluster;
pub mod deck_memory;
pub mod load_decks;
pub mod pg;
pub mod redis;
pub mod report;
pub mod route;
pub mod write;

use std::io::Write;

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};

use super::{
    cli::RunArgs,
    driver::{self, Request, RunResult, RunShape},
    histogram::Latencies,
};

/// Most addresses a run spreads over.
pub const MAX_ADDRESSES: usize = 16;

/// Refuses more `--addrs` than a run spreads over.
pub fn check_addresses(addrs: &[String]) -> Result<(), String> {
    if addrs.len() > MAX_ADDRESSES {
        return Err(format!(
            "--addrs: {} addresses; the limit is {MAX_ADDRESSES}",
            addrs.len()
        ));
    }
    Ok(())
}

/// `connections` gRPC connections, connection `i` to `addrs[i % addrs.len()]`. Each
/// `Endpoint::connect` opens its own HTTP/2 connection, which the caller's workers share.
pub async fn grpc_connections(
    addrs: &[String],
    connections: usize,
) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(connections);
    for connection in 0..connections {
        let addr = &addrs[connection % addrs.len()];
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("can't connect to {addr}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Runs an anchor's `workers`, one a connection to `target`, and prints the result.
pub async fn run_anchor<R: Request>(
    run: &RunArgs,
    backend: &str,
    target: &str,
    latencies: Latencies,
    workers: Vec<R>,
) -> anyhow::Result<()> {
    let shape = RunShape {
        backend: backend.to_owned(),
        target: target.to_owned(),
        connections: run.connections,
        streams_per_connection: 1,
        window_per_stream: None,
    };
    let label = run.label(&shape);
    let result = driver::run(
        &label,
        shape,
        run.plan(),
        &run.server_pids,
        latencies,
        workers,
    )
    .await?;
    print(&result).context("can't print the result")
}

/// Prints `result`: its JSON on stdout (one line), its human line on stderr. A closed stdout
/// (`loadgen ... | head`) is not an error.
pub fn print(result: &RunResult) -> anyhow::Result<()> {
    eprintln!("{}", result.human_line());
    let line = serde_json::to_string(result)?;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}
