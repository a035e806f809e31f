//! `loadgen cluster`: a Trunkline cluster of real processes on loopback for a perf run — a
//! `trunkline dev --no-auth` node (which seeds the demo tenant and its decks) and, with
//! `--nodes 3`, two members joined and promoted (`dev_node::start_cluster`). It prints one
//! line per node, then `ready`, and keeps the nodes until SIGTERM or SIGINT, when it stops
//! them (SIGTERM, SIGKILL after 10 s) and exits.
//!
//! The lines: `node <id> api <host:port> pid <pid>`, for a script to read.

use std::{io::Write, path::PathBuf};

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

use crate::dev_node::start_cluster;

/// Most nodes one cluster starts.
const MAX_NODES: u64 = 7;

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The `trunkline` binary.
    #[arg(long, value_parser = crate::loadgen::cli::existing_file)]
    pub trunkline: PathBuf,
    /// A folder for the nodes' data folders and logs (`node-N`, `node-N.log`).
    #[arg(long)]
    pub root: PathBuf,
    /// Voters in the cluster.
    #[arg(long, default_value_t = 1, value_parser = nodes)]
    pub nodes: u64,
}

fn nodes(text: &str) -> Result<u64, String> {
    crate::loadgen::cli::count_between(text, 1, MAX_NODES)
}

pub async fn exec(args: Args) -> anyhow::Result<()> {
    // Listening before the nodes start, so a signal sent while they start still stops them.
    let mut terminate = signal(SignalKind::terminate()).context("can't listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("can't listen for SIGINT")?;
    std::fs::create_dir_all(&args.root)
        .with_context(|| format!("can't create {}", args.root.display()))?;
    let mut nodes = start_cluster(&args.trunkline, &args.root, args.nodes).await?;
    {
        let mut stdout = std::io::stdout().lock();
        for (position, node) in nodes.iter().enumerate() {
            writeln!(
                stdout,
                "node {} api {} pid {}",
                position + 1,
                node.api_addr,
                node.pid
            )?;
        }
        writeln!(stdout, "ready")?;
        stdout.flush()?;
    }
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tokio::task::spawn_blocking(move || {
        for node in &mut nodes {
            node.stop();
        }
    })
    .await?;
    Ok(())
}
