//! `trunkline`: the node daemon.
//!
//! Exit codes: 0 after a clean shutdown, 1 when the node fails at start or while running
//! (a supervisor should restart it), 2 for a bad command line or configuration, 3 when the
//! data folder is damaged (restarting won't help: `trunkline recover --data-dir DIR`).

use std::{io::Write, path::PathBuf, process::ExitCode};

/// mimalloc, tuned to give freed memory back at once: see `trunkline_alloc`.
#[global_allocator]
static ALLOCATOR: trunkline_alloc::Allocator = trunkline_alloc::Allocator;

use clap::{Parser, Subcommand};
use trunkline_node::{
    config::{Config, FileConfig, Overrides},
    dev::DevArgs,
    server::{shutdown_signal, NodeServer},
};

#[derive(Parser)]
#[command(name = "trunkline", version, about = "Trunkline call-routing node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node of a real deployment.
    Serve {
        /// TOML configuration file; every option can also be given by flag or environment.
        #[arg(long, short, env = "TRUNKLINE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Box<Overrides>,
    },
    /// Run a single self-initialising node for development and demos.
    Dev(DevArgs),
    /// Bring a node back from a damaged data folder: move the folder aside and start it
    /// again empty (keeping its last vote), to catch up from the cluster's leader.
    Recover {
        /// The node's data folder (stop the node first).
        #[arg(long, env = "TRUNKLINE_DATA_DIR")]
        data_dir: PathBuf,
        /// Go on even when the node's last vote can't be read. Safe only after the node was
        /// removed from the cluster (`trunkctl cluster remove N`); join it again afterwards.
        #[arg(long)]
        forget_vote: bool,
        /// When a quorum of voters is gone for good: make this stopped voter or learner the
        /// one voter of a new cluster with everything it saw committed, which new nodes then
        /// join. Entries never replicated to it are lost. Refused while a quorum of the old
        /// voters still answers at their peer addresses.
        #[arg(long, conflicts_with = "forget_vote")]
        force_new_cluster: bool,
        /// The node's encryption key file, when its folder is sealed: the new folder is
        /// sealed with it too.
        #[arg(long, value_name = "FILE")]
        encryption_key_file: Option<PathBuf>,
    },
    /// Make the first node of a new cluster from a backup (`trunkctl backup FILE`): the
    /// folder gets the backup's state and this node as the cluster's one voter. Start it with
    /// `trunkline serve` on the same folder, then join new nodes to it.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The new node's data folder: must be new or empty.
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        node_id: u64,
        #[arg(long)]
        cluster_name: String,
        /// The encryption key file (`ID HEX` lines): opens a sealed backup, and seals the new
        /// folder; the node must then run with the same file.
        #[arg(long, value_name = "FILE")]
        encryption_key_file: Option<PathBuf>,
    },
}

/// The exit code of a node that refused its damaged data folder.
const EXIT_DAMAGED_DATA: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Recover {
        data_dir,
        forget_vote,
        force_new_cluster,
        encryption_key_file,
    } = &cli.command
    {
        if *force_new_cluster {
            return recover_new_cluster(data_dir, encryption_key_file.as_deref());
        }
        return recover(data_dir, *forget_vote, encryption_key_file.as_deref());
    }
    if let Command::Restore {
        file,
        data_dir,
        node_id,
        cluster_name,
        encryption_key_file,
    } = &cli.command
    {
        return restore(
            file,
            data_dir,
            *node_id,
            cluster_name,
            encryption_key_file.as_deref(),
        );
    }
    let (config, dev) = match resolve(&cli.command) {
        Ok(resolved) => resolved,
        Err(error) => {
            eprintln!("trunkline: {error:#}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let origin = trunkline_node::telemetry::Origin {
            node_id: config.node_id,
            cluster_name: &config.cluster_name,
        };
        // Held until the node stops: dropping it flushes the spans still queued.
        let _telemetry = trunkline_node::telemetry::init(
            &config.log_level,
            config.log_format,
            config.otlp_endpoint.as_deref(),
            &origin,
        )?;
        run(config, dev).await
    });
    // Tasks still blocked on the disk (a flush on a full disk) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("trunkline: {error:#}");
            let damaged = error.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<trunkline_store::StoreError>(),
                    Some(trunkline_store::StoreError::Corrupt { .. })
                )
            });
            // Keys that don't fit the folder are a configuration to fix, like a bad option.
            let wrong_keys = error.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<trunkline_store::StoreError>(),
                    Some(trunkline_store::StoreError::Keys { .. })
                )
            });
            // So are certificates that can't be read or belong to another node.
            let bad_config = error.chain().any(|cause| {
                cause
                    .downcast_ref::<trunkline_node::config::ConfigError>()
                    .is_some()
            });
            if damaged {
                ExitCode::from(EXIT_DAMAGED_DATA)
            } else if wrong_keys || bad_config {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The async runtime `builder` makes, or `None` after saying why there is none.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("trunkline: can't start the async runtime: {error}");
            None
        }
    }
}

fn recover(
    data_dir: &std::path::Path,
    forget_vote: bool,
    key_file: Option<&std::path::Path>,
) -> ExitCode {
    let keys = match read_keys(key_file) {
        Ok(keys) => keys,
        Err(reason) => {
            eprintln!("trunkline: recover: {reason}; nothing was changed");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(trunkline_store::recover(data_dir, forget_vote, keys)) {
        Ok(recovered) => {
            let vote = match recovered.vote {
                Some(vote) => format!("kept its last vote ({vote})"),
                None => "has no vote to keep".to_owned(),
            };
            println!(
                "trunkline: moved the damaged folder to {}\n  {} is now an empty folder for \
                 {} that {vote}.\n  Start the node as before: it catches up from the \
                 cluster's leader (by snapshot if the log was compacted). A single-node \
                 cluster has no leader to catch up from: restore it from a backup, or \
                 initialise it again.",
                recovered.moved_to.display(),
                data_dir.display(),
                recovered.identity
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("trunkline: recover: {error}");
            ExitCode::FAILURE
        }
    }
}

/// How long a peer address may take to accept a connection before its node counts as gone.
const PEER_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn recover_new_cluster(data_dir: &std::path::Path, key_file: Option<&std::path::Path>) -> ExitCode {
    let refuse = |message: String| {
        eprintln!("trunkline: recover --force-new-cluster: {message}; nothing was changed");
        ExitCode::from(2)
    };
    let keys = match read_keys(key_file) {
        Ok(keys) => keys,
        Err(reason) => return refuse(reason),
    };
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let survivor = match trunkline_store::inspect(data_dir, keys.clone()).await {
            Ok(survivor) => survivor,
            Err(error) => return refuse(error.to_string()),
        };
        let node_id = survivor.identity.node_id;
        let voters = survivor.voters().to_vec();
        let mut answering = Vec::new();
        for (id, node) in voters.iter().filter(|(id, _)| *id != node_id) {
            let connected = tokio::time::timeout(
                PEER_ANSWER_TIMEOUT,
                tokio::net::TcpStream::connect(node.peer_addr.as_str()),
            )
            .await;
            if matches!(connected, Ok(Ok(_))) {
                answering.push(format!("{id} ({})", node.peer_addr));
            }
        }
        let alive = answering.len() + usize::from(voters.iter().any(|(id, _)| *id == node_id));
        if alive * 2 > voters.len() {
            return refuse(format!(
                "the cluster still has a quorum: of its {} voters, {} answer at their peer \
                 addresses{}{}. A new cluster beside it would split routing in two: restart \
                 this node instead (it catches up), or stop the others for good first",
                voters.len(),
                answering.len(),
                if answering.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", answering.join(", "))
                },
                if alive > answering.len() {
                    " and this node is one"
                } else {
                    ""
                }
            ));
        }
        let after_committed = survivor.after_committed;
        let identity = survivor.identity.clone();
        match trunkline_store::force_new_cluster(data_dir, survivor, keys).await {
            Ok(forced) => {
                let kept = if after_committed > 0 {
                    format!(
                        " (the last {after_committed} it had not seen committed are kept; the \
                         old cluster may not have committed them)"
                    )
                } else {
                    String::new()
                };
                println!(
                    "trunkline: node {} is now the one voter of a new cluster {:?}, with \
                     everything in its log, to index {}{kept}.\n  Its old folder is kept at \
                     {}.\n  Start it as before: it leads alone; then join new nodes with \
                     `trunkctl cluster join` and promote them.",
                    identity.node_id,
                    identity.cluster_name,
                    forced.index,
                    forced.moved_to.display()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("trunkline: recover --force-new-cluster: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The keys of `key_file` (`ID HEX` lines), or why they can't be read.
fn read_keys(
    key_file: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<trunkline_store::seal::KeyRing>>, String> {
    key_file
        .map(trunkline_store::seal::KeyRing::read)
        .transpose()
        .map(|keys| keys.map(std::sync::Arc::new))
}

fn restore(
    file: &std::path::Path,
    data_dir: &std::path::Path,
    node_id: u64,
    cluster_name: &str,
    key_file: Option<&std::path::Path>,
) -> ExitCode {
    let refuse = |message: String| {
        eprintln!("trunkline: restore: {message}; nothing was changed");
        ExitCode::from(2)
    };
    if let Err(error) = trunkline_node::config::check_node_id(node_id)
        .and_then(|()| trunkline_node::config::check_cluster_name(cluster_name))
    {
        return refuse(error.to_string());
    }
    let keys = match read_keys(key_file) {
        Ok(keys) => keys,
        Err(reason) => return refuse(reason),
    };
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(error) => return refuse(format!("can't read {}: {error}", file.display())),
    };
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let identity = trunkline_store::Identity {
        cluster_name: cluster_name.to_owned(),
        node_id,
    };
    match runtime.block_on(trunkline_store::backup::restore(
        &bytes, data_dir, &identity, keys,
    )) {
        Ok(restored) => {
            println!(
                "trunkline: restored {} into {}\n  node {node_id} of the new cluster \
                 {cluster_name:?}, at log index {} of the backup taken from node {} of {:?}.\n  \
                 Start it with `trunkline serve --data-dir {} --node-id {node_id} \
                 --cluster-name {cluster_name}` (and its addresses); it leads alone, then join \
                 new nodes with `trunkctl cluster join`.",
                file.display(),
                data_dir.display(),
                restored.index,
                restored.header.node_id,
                restored.header.cluster_name,
                data_dir.display()
            );
            ExitCode::SUCCESS
        }
        // The file and the folder are checked, and the state decoded, before the folder is
        // made: these change nothing.
        Err(error @ trunkline_store::backup::BackupError::NotEmpty(_)) => refuse(error.to_string()),
        Err(trunkline_store::backup::BackupError::Store(error)) => {
            eprintln!("trunkline: restore: {error}");
            ExitCode::FAILURE
        }
        Err(error) => refuse(format!("{}: {error}", file.display())),
    }
}

fn resolve(command: &Command) -> anyhow::Result<(Config, bool)> {
    match command {
        Command::Serve { config, overrides } => {
            let file = match config {
                Some(path) => FileConfig::load(path)?,
                None => FileConfig::default(),
            };
            Ok((Config::resolve(file, overrides)?, false))
        }
        Command::Dev(args) => Ok((args.config()?, true)),
        Command::Recover { .. } | Command::Restore { .. } => {
            anyhow::bail!("recover and restore run without a node configuration")
        }
    }
}

async fn run(config: Config, dev: bool) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let server = NodeServer::start(&config).await?;
    if dev {
        trunkline_node::dev::initialize(server.cluster(), &config.data_dir).await?;
    }
    if dev && trunkline_node::demo::seed(server.cluster()).await? {
        tracing::info!("seeded the demo tenant, carriers, rate decks, device and DID");
    }
    if dev {
        // The banner invites lookups at once: wait until they can see the demo (the prefix
        // index is built off the apply path, a moment after the writes).
        let applied = server
            .cluster()
            .reader
            .current()
            .last_applied
            .map_or(0, |log_id| log_id.index);
        server
            .routing_views()
            .at_least(applied, std::time::Duration::from_secs(30))
            .await?;
    }
    let mut banner = format!(
        "trunkline: node {} of cluster {:?}\n  api   {}  (SIP proxies, trunkctl)\n  peer  {}\n  data  {}\n",
        config.node_id,
        config.cluster_name,
        server.api_addr,
        server.peer_addr,
        config.data_dir.display()
    );
    if let Some(http_addr) = server.http_addr {
        banner.push_str(&format!(
            "  http  {http_addr}  (HTTP/1.1 JSON for Kamailio and scripts: docs/http-api.md)\n"
        ));
    }
    if let Some(metrics_addr) = server.metrics_addr {
        banner.push_str(&format!(
            "  metrics {metrics_addr}  (Prometheus: http://{metrics_addr}/metrics)\n"
        ));
    }
    if dev && config.require_auth {
        banner.push_str(&format!(
            "  token {}  (trunkctl run in this folder finds it)\n",
            config
                .data_dir
                .join(trunkline_node::dev::ADMIN_TOKEN_FILE)
                .display()
        ));
    }
    if dev {
        banner.push_str(&format!(
            "Try: trunkctl --endpoints {addr} route test +442071234567 --tenant {}\n     \
             trunkctl --endpoints {addr} route inbound {}\n",
            trunkline_node::demo::DEMO_TENANT,
            trunkline_node::demo::DEMO_DID,
            addr = server.cluster().self_node.api_addr,
        ));
    } else if !server.cluster().is_initialized().await {
        // With tokens required, InitCluster takes the bootstrap secret the node wrote.
        let token_file = match config.require_auth {
            true => format!(
                " --token-file {}",
                config
                    .data_dir
                    .join(trunkline_node::auth::BOOTSTRAP_FILE)
                    .display()
            ),
            false => String::new(),
        };
        banner.push_str(&format!(
            "Not a cluster member yet: run `trunkctl --endpoints {}{token_file} cluster init` on \
             one node, then `trunkctl cluster join` for the others.\n",
            server.cluster().self_node.api_addr
        ));
    }
    // A daemon must not die because whoever started it closed its standard output.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(banner.as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);
    server.with_exit_watchdog().serve(shutdown).await
}
