//! `trunkline dev`: a single node for newcomers. Its data lives in a folder it names; it
//! initialises itself on first start and restarts on its data after that.

use std::{net::SocketAddr, path::PathBuf};

use crate::config::{Config, RaftConfig};

/// The dev node's id and cluster name; fixed so a restart finds its own data folder.
pub const DEV_NODE_ID: u64 = 1;
pub const DEV_CLUSTER_NAME: &str = "dev";
pub const DEV_DATA_DIR: &str = "trunkline-dev-data";
/// The file in the dev data folder holding the first admin token, which trunkctl reads when
/// it is given none.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Initialises the dev node on its first start, and writes its first admin token to
/// [`ADMIN_TOKEN_FILE`] in the data folder. A folder initialised by a build without tokens
/// gets its first admin token now.
pub async fn initialize(
    cluster: &crate::cluster::Cluster,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let admin_token = if !cluster.is_initialized().await {
        cluster.initialize().await?
    } else if cluster.reader.current().state.tokens().is_empty() {
        cluster.create_first_admin_token().await?
    } else {
        return Ok(());
    };
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    crate::auth::write_secret(&path, &admin_token).map_err(|error| {
        anyhow::anyhow!("can't write the admin token to {}: {error}", path.display())
    })
}

#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Client listener for SIP proxies and trunkctl; the peer listener takes the next port.
    #[arg(long, default_value = crate::config::DEFAULT_API_ADDR)]
    pub listen: SocketAddr,
    /// Where the dev node keeps its data.
    #[arg(long, default_value = DEV_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Answer every caller without a token (for tools that measure the node itself). By
    /// default the dev node requires one, and trunkctl run in this folder finds the first
    /// admin token in the data folder's admin.token.
    #[arg(long)]
    pub no_auth: bool,
}

impl DevArgs {
    /// `--listen` with its port `offset` further (port 0 stays 0: a free port each).
    fn after_listen(&self, offset: u16, what: &str) -> anyhow::Result<SocketAddr> {
        let mut address = self.listen;
        let port = self.listen.port();
        if port != 0 {
            let moved = port.checked_add(offset).ok_or_else(|| {
                anyhow::anyhow!("--listen: port {port} leaves no room for {what} {offset} ports on")
            })?;
            address.set_port(moved);
        }
        Ok(address)
    }

    pub fn config(&self) -> anyhow::Result<Config> {
        if !self.listen.ip().is_loopback() {
            anyhow::bail!(
                "--listen {}: the dev node serves plaintext, so it listens on loopback only \
                 (e.g. 127.0.0.1:7400); run `trunkline serve` with certificates to serve a network",
                self.listen
            );
        }
        // The other listeners on the ports after --listen (all on free ports with port 0):
        // peer, the HTTP JSON listener (for Kamailio and scripts), Prometheus's /metrics.
        let peer_addr = self.after_listen(1, "the peer listener")?;
        let http_addr = self.after_listen(2, "the HTTP listener")?;
        let metrics_addr = self.after_listen(3, "the metrics listener")?;
        Ok(Config {
            node_id: DEV_NODE_ID,
            cluster_name: DEV_CLUSTER_NAME.to_owned(),
            data_dir: self.data_dir.clone(),
            api_addr: self.listen,
            peer_addr,
            http_addr: Some(http_addr),
            metrics_addr: Some(metrics_addr),
            leg_timers: crate::config::LegTimers::default(),
            advertise_api_addr: None,
            advertise_peer_addr: None,
            raft: RaftConfig::default(),
            log_level: crate::config::DEFAULT_LOG_LEVEL.to_owned(),
            log_format: crate::telemetry::LogFormat::Text,
            otlp_endpoint: None,
            probe_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            peer_liveness_timeout_ms: crate::config::DEFAULT_PEER_LIVENESS_TIMEOUT_MS,
            min_free_bytes: crate::config::DEFAULT_MIN_FREE_BYTES,
            store_cache_bytes: crate::config::DEFAULT_STORE_CACHE_BYTES,
            limits: crate::config::LimitsConfig::default(),
            service_limits: crate::config::ServiceLimits::default(),
            require_auth: !self.no_auth,
            encryption_keys: None,
            transport: crate::config::Transport::Insecure,
            webhook_ca_file: None,
        })
    }
}
