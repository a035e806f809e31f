//! The node's configuration: a TOML file, each option overridable by an environment variable
//! and then by a command-line flag (flag beats environment beats file beats default).
//!
//! Everything is validated here, before the node touches its data folder or binds a port, so a
//! bad option never leaves anything half started.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::limits;

/// Default client listener: SIP proxies and trunkctl.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:7400";
/// Default peer listener: Raft traffic between nodes.
pub const DEFAULT_PEER_ADDR: &str = "127.0.0.1:7401";
/// Default log filter: openraft logs every election step at info.
pub const DEFAULT_LOG_LEVEL: &str = "info,openraft=warn";
/// Default source of OPTIONS probes: any interface, a port the kernel picks.
pub const DEFAULT_PROBE_ADDR: &str = "0.0.0.0:0";
/// Default time without an answer to pings after which a member counts as dead for probing.
pub const DEFAULT_PEER_LIVENESS_TIMEOUT_MS: u64 = 1_000;
/// Shortest liveness timeout accepted: a few ping intervals.
pub const MIN_PEER_LIVENESS_TIMEOUT_MS: u64 = 300;
/// Default name of a cluster; a node refuses Raft traffic from a cluster of another name.
pub const DEFAULT_CLUSTER_NAME: &str = "trunkline";

/// The options as written in the TOML file. Every field is optional here; defaults are filled
/// in by [`Config::resolve`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub node_id: Option<u64>,
    pub cluster_name: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub api_addr: Option<String>,
    pub peer_addr: Option<String>,
    pub advertise_api_addr: Option<String>,
    pub advertise_peer_addr: Option<String>,
    #[serde(default)]
    pub raft: RaftFileConfig,
    #[serde(default)]
    pub log: LogFileConfig,
    #[serde(default)]
    pub health: HealthFileConfig,
    #[serde(default)]
    pub streams: StreamsFileConfig,
    #[serde(default)]
    pub answers: AnswersFileConfig,
}

/// `[streams]`: open server streams per node (see `limits.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsFileConfig {
    pub max_watch_streams: Option<usize>,
    pub max_export_streams: Option<usize>,
}

/// `[answers]`: the size of route answers (see `limits.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswersFileConfig {
    pub max_legs: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFileConfig {
    /// host:port the UDP OPTIONS probes leave from (carriers often allow-list it).
    pub probe_addr: Option<String>,
    pub peer_liveness_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftFileConfig {
    pub heartbeat_interval_ms: Option<u64>,
    pub election_timeout_min_ms: Option<u64>,
    pub election_timeout_max_ms: Option<u64>,
    pub snapshot_logs_since_last: Option<u64>,
    pub max_in_snapshot_log_to_keep: Option<u64>,
    pub install_snapshot_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFileConfig {
    /// A tracing filter such as `info` or `trunkline_node=debug,info`.
    pub level: Option<String>,
}

/// Options given on the command line or in the environment; they override the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// This node's id: a positive number, unique in the cluster and never reused.
    #[arg(long, env = "TRUNKLINE_NODE_ID")]
    pub node_id: Option<u64>,
    /// The cluster's name; nodes of different names refuse each other's traffic.
    #[arg(long, env = "TRUNKLINE_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Where the node keeps its Raft log, state and snapshots.
    #[arg(long, env = "TRUNKLINE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Client listener (host:port) for SIP proxies and trunkctl.
    #[arg(long, env = "TRUNKLINE_API_ADDR")]
    pub api_addr: Option<String>,
    /// Peer listener (host:port) for Raft traffic between nodes.
    #[arg(long, env = "TRUNKLINE_PEER_ADDR")]
    pub peer_addr: Option<String>,
    /// Client address other nodes and clients should use, when it differs from --api-addr.
    #[arg(long, env = "TRUNKLINE_ADVERTISE_API_ADDR")]
    pub advertise_api_addr: Option<String>,
    /// Peer address other nodes should use, when it differs from --peer-addr.
    #[arg(long, env = "TRUNKLINE_ADVERTISE_PEER_ADDR")]
    pub advertise_peer_addr: Option<String>,
    #[arg(long, env = "TRUNKLINE_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<u64>,
    #[arg(long, env = "TRUNKLINE_ELECTION_TIMEOUT_MIN_MS")]
    pub election_timeout_min_ms: Option<u64>,
    #[arg(long, env = "TRUNKLINE_ELECTION_TIMEOUT_MAX_MS")]
    pub election_timeout_max_ms: Option<u64>,
    /// Build a snapshot after this many log entries since the last one.
    #[arg(long, env = "TRUNKLINE_SNAPSHOT_LOGS_SINCE_LAST")]
    pub snapshot_logs_since_last: Option<u64>,
    /// Log entries kept after a snapshot, so slow followers catch up without one.
    #[arg(long, env = "TRUNKLINE_MAX_IN_SNAPSHOT_LOG_TO_KEEP")]
    pub max_in_snapshot_log_to_keep: Option<u64>,
    /// A tracing filter such as `info` or `trunkline_node=debug,info`.
    #[arg(long, env = "TRUNKLINE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// host:port the UDP OPTIONS probes to gateways leave from.
    #[arg(long, env = "TRUNKLINE_PROBE_ADDR")]
    pub probe_addr: Option<String>,
    /// A member silent to pings this long stops probing; others take its gateways over.
    #[arg(long, env = "TRUNKLINE_PEER_LIVENESS_TIMEOUT_MS")]
    pub peer_liveness_timeout_ms: Option<u64>,
    /// Open WatchEvents streams this node serves at once; more are refused.
    #[arg(long, env = "TRUNKLINE_MAX_WATCH_STREAMS")]
    pub max_watch_streams: Option<usize>,
    /// Open ExportRates streams this node serves at once; more are refused.
    #[arg(long, env = "TRUNKLINE_MAX_EXPORT_STREAMS")]
    pub max_export_streams: Option<usize>,
    /// Legs in one route answer (RouteOutbound, an inbound number target).
    #[arg(long, env = "TRUNKLINE_MAX_LEGS")]
    pub max_legs: Option<usize>,
}

/// What one client's streams and answers may make a node hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLimits {
    pub max_watch_streams: usize,
    pub max_export_streams: usize,
    pub max_legs: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            max_watch_streams: limits::DEFAULT_MAX_WATCH_STREAMS,
            max_export_streams: limits::DEFAULT_MAX_EXPORT_STREAMS,
            max_legs: limits::DEFAULT_MAX_LEGS_PER_ANSWER,
        }
    }
}

impl ServiceLimits {
    fn resolve(
        streams: &StreamsFileConfig,
        answers: &AnswersFileConfig,
        overrides: &Overrides,
    ) -> Result<ServiceLimits, ConfigError> {
        let defaults = ServiceLimits::default();
        let bounded = |key: &'static str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(value)
            } else {
                Err(invalid(key, format!("({value}) must be 1 to {max}")))
            }
        };
        Ok(ServiceLimits {
            max_watch_streams: bounded(
                "streams.max_watch_streams",
                overrides
                    .max_watch_streams
                    .or(streams.max_watch_streams)
                    .unwrap_or(defaults.max_watch_streams),
                limits::MAX_STREAMS_LIMIT,
            )?,
            max_export_streams: bounded(
                "streams.max_export_streams",
                overrides
                    .max_export_streams
                    .or(streams.max_export_streams)
                    .unwrap_or(defaults.max_export_streams),
                limits::MAX_STREAMS_LIMIT,
            )?,
            max_legs: bounded(
                "answers.max_legs",
                overrides
                    .max_legs
                    .or(answers.max_legs)
                    .unwrap_or(defaults.max_legs),
                limits::MAX_LEGS_PER_ANSWER,
            )?,
        })
    }
}

/// Raft timings and snapshot policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub snapshot_logs_since_last: u64,
    pub max_in_snapshot_log_to_keep: u64,
    pub install_snapshot_timeout_ms: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            snapshot_logs_since_last: 10_000,
            max_in_snapshot_log_to_keep: 1_000,
            install_snapshot_timeout_ms: 30_000,
        }
    }
}

/// A complete, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node_id: u64,
    pub cluster_name: String,
    pub data_dir: PathBuf,
    pub api_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    /// `None`: advertise the address actually bound.
    pub advertise_api_addr: Option<String>,
    pub advertise_peer_addr: Option<String>,
    pub raft: RaftConfig,
    pub log_level: String,
    pub probe_addr: SocketAddr,
    pub peer_liveness_timeout_ms: u64,
    pub service_limits: ServiceLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("can't read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        // toml's message names the line, the column and the key.
        toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })
    }
}

impl Config {
    /// Merges file and overrides, fills defaults and validates everything.
    pub fn resolve(file: FileConfig, overrides: &Overrides) -> Result<Config, ConfigError> {
        let node_id = overrides.node_id.or(file.node_id).ok_or_else(|| {
            invalid(
                "node_id",
                "is not set: put `node_id = N` in the config file or pass --node-id / TRUNKLINE_NODE_ID",
            )
        })?;
        if node_id == 0 {
            return Err(invalid("node_id", "must be a positive number"));
        }
        let cluster_name = overrides
            .cluster_name
            .clone()
            .or(file.cluster_name)
            .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_owned());
        if cluster_name.is_empty()
            || cluster_name.len() > 64
            || !cluster_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(invalid(
                "cluster_name",
                format!("{cluster_name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"),
            ));
        }
        let data_dir = overrides
            .data_dir
            .clone()
            .or(file.data_dir)
            .ok_or_else(|| {
                invalid(
                    "data_dir",
                    "is not set: put `data_dir = \"/var/lib/trunkline\"` in the config file or pass --data-dir",
                )
            })?;
        let api_addr = parse_addr(
            "api_addr",
            overrides.api_addr.as_deref().or(file.api_addr.as_deref()),
            DEFAULT_API_ADDR,
        )?;
        let peer_addr = parse_addr(
            "peer_addr",
            overrides.peer_addr.as_deref().or(file.peer_addr.as_deref()),
            DEFAULT_PEER_ADDR,
        )?;
        if api_addr == peer_addr && api_addr.port() != 0 {
            return Err(invalid(
                "peer_addr",
                format!("{peer_addr} is also api_addr; the two listeners need different ports"),
            ));
        }
        let advertise_api_addr = overrides
            .advertise_api_addr
            .clone()
            .or(file.advertise_api_addr);
        let advertise_peer_addr = overrides
            .advertise_peer_addr
            .clone()
            .or(file.advertise_peer_addr);
        for (key, value) in [
            ("advertise_api_addr", &advertise_api_addr),
            ("advertise_peer_addr", &advertise_peer_addr),
        ] {
            if let Some(value) = value {
                validate_host_port(key, value)?;
            }
        }

        let defaults = RaftConfig::default();
        let raft = RaftConfig {
            heartbeat_interval_ms: overrides
                .heartbeat_interval_ms
                .or(file.raft.heartbeat_interval_ms)
                .unwrap_or(defaults.heartbeat_interval_ms),
            election_timeout_min_ms: overrides
                .election_timeout_min_ms
                .or(file.raft.election_timeout_min_ms)
                .unwrap_or(defaults.election_timeout_min_ms),
            election_timeout_max_ms: overrides
                .election_timeout_max_ms
                .or(file.raft.election_timeout_max_ms)
                .unwrap_or(defaults.election_timeout_max_ms),
            snapshot_logs_since_last: overrides
                .snapshot_logs_since_last
                .or(file.raft.snapshot_logs_since_last)
                .unwrap_or(defaults.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: overrides
                .max_in_snapshot_log_to_keep
                .or(file.raft.max_in_snapshot_log_to_keep)
                .unwrap_or(defaults.max_in_snapshot_log_to_keep),
            install_snapshot_timeout_ms: file
                .raft
                .install_snapshot_timeout_ms
                .unwrap_or(defaults.install_snapshot_timeout_ms),
        };
        if raft.heartbeat_interval_ms == 0 {
            return Err(invalid("raft.heartbeat_interval_ms", "must be above 0"));
        }
        if raft.election_timeout_min_ms <= raft.heartbeat_interval_ms {
            return Err(invalid(
                "raft.election_timeout_min_ms",
                format!(
                    "({}) must be above raft.heartbeat_interval_ms ({}), or followers call elections between heartbeats",
                    raft.election_timeout_min_ms, raft.heartbeat_interval_ms
                ),
            ));
        }
        if raft.election_timeout_max_ms <= raft.election_timeout_min_ms {
            return Err(invalid(
                "raft.election_timeout_max_ms",
                format!(
                    "({}) must be above raft.election_timeout_min_ms ({})",
                    raft.election_timeout_max_ms, raft.election_timeout_min_ms
                ),
            ));
        }
        if raft.snapshot_logs_since_last == 0 {
            return Err(invalid("raft.snapshot_logs_since_last", "must be above 0"));
        }
        let log_level = overrides
            .log_level
            .clone()
            .or(file.log.level)
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
        let probe_addr = parse_addr(
            "health.probe_addr",
            overrides
                .probe_addr
                .as_deref()
                .or(file.health.probe_addr.as_deref()),
            DEFAULT_PROBE_ADDR,
        )?;
        let peer_liveness_timeout_ms = overrides
            .peer_liveness_timeout_ms
            .or(file.health.peer_liveness_timeout_ms)
            .unwrap_or(DEFAULT_PEER_LIVENESS_TIMEOUT_MS);
        if peer_liveness_timeout_ms < MIN_PEER_LIVENESS_TIMEOUT_MS {
            return Err(invalid(
                "health.peer_liveness_timeout_ms",
                format!("must be at least {MIN_PEER_LIVENESS_TIMEOUT_MS}"),
            ));
        }
        let service_limits = ServiceLimits::resolve(&file.streams, &file.answers, overrides)?;

        Ok(Config {
            node_id,
            cluster_name,
            data_dir,
            api_addr,
            peer_addr,
            advertise_api_addr,
            advertise_peer_addr,
            raft,
            log_level,
            probe_addr,
            peer_liveness_timeout_ms,
            service_limits,
        })
    }

    /// The openraft configuration these options make.
    pub fn openraft(&self) -> Result<openraft::Config, ConfigError> {
        let config = openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: self.raft.heartbeat_interval_ms,
            election_timeout_min: self.raft.election_timeout_min_ms,
            election_timeout_max: self.raft.election_timeout_max_ms,
            install_snapshot_timeout: self.raft.install_snapshot_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                self.raft.snapshot_logs_since_last,
            ),
            max_in_snapshot_log_to_keep: self.raft.max_in_snapshot_log_to_keep,
            max_payload_entries: crate::limits::RAFT_MAX_PAYLOAD_ENTRIES,
            snapshot_max_chunk_size: crate::limits::RAFT_SNAPSHOT_CHUNK_BYTES,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|error| invalid("raft", error.to_string()))
    }

    /// How long a Raft append or vote may take before the peer counts as unreachable.
    pub fn raft_rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.raft.election_timeout_min_ms)
    }
}

fn parse_addr(
    key: &'static str,
    value: Option<&str>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let value = value.unwrap_or(default);
    value.parse().map_err(|_| {
        invalid(
            key,
            format!("{value:?} is not an IP address and port such as 127.0.0.1:7400 or [::]:7400"),
        )
    })
}

fn validate_host_port(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if trunkline_api::is_host_port(value) {
        Ok(())
    } else {
        Err(invalid(key, format!("{value:?} is not host:port")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, overrides: Overrides) -> Result<Config, ConfigError> {
        let file = FileConfig::parse(Path::new("node.toml"), text)?;
        Config::resolve(file, &overrides)
    }

    fn check_error(text: &str, needles: &[&str]) {
        let error = resolve(text, Overrides::default()).unwrap_err().to_string();
        for needle in needles {
            assert!(error.contains(needle), "{needle:?} not in {error:?}");
        }
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../../../deploy/trunkline.toml");
        let config = resolve(text, Overrides::default()).unwrap();
        assert_eq!(config.cluster_name, "east");
        assert_eq!(
            config.advertise_peer_addr.as_deref(),
            Some("10.0.0.11:7401")
        );
        config.openraft().unwrap();
    }

    #[test]
    fn a_minimal_file_gets_defaults() {
        let config = resolve("node_id = 3\ndata_dir = \"/d\"\n", Overrides::default()).unwrap();
        assert_eq!(config.node_id, 3);
        assert_eq!(config.cluster_name, DEFAULT_CLUSTER_NAME);
        assert_eq!(config.api_addr.to_string(), DEFAULT_API_ADDR);
        assert_eq!(config.raft, RaftConfig::default());
        config.openraft().unwrap();
    }

    #[test]
    fn flags_override_the_file() {
        let overrides = Overrides {
            node_id: Some(7),
            api_addr: Some("127.0.0.1:9000".into()),
            heartbeat_interval_ms: Some(50),
            ..Overrides::default()
        };
        let config = resolve(
            "node_id = 3\ndata_dir = \"/d\"\napi_addr = \"127.0.0.1:1\"\n[raft]\nheartbeat_interval_ms = 70\n",
            overrides,
        )
        .unwrap();
        assert_eq!(config.node_id, 7);
        assert_eq!(config.api_addr.port(), 9000);
        assert_eq!(config.raft.heartbeat_interval_ms, 50);
    }

    #[test]
    fn a_wrong_type_names_the_key_and_the_line() {
        check_error(
            "data_dir = \"/d\"\nnode_id = \"one\"\n",
            &["node.toml", "line 2", "node_id"],
        );
    }

    #[test]
    fn an_unknown_key_is_named() {
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\nnod_id = 1\n",
            &["line 3", "unknown field `nod_id`"],
        );
        check_error(
            "node_id = 1\n[raft]\nheartbeat_ms = 1\n",
            &["line 3", "heartbeat_ms"],
        );
    }

    #[test]
    fn missing_node_id_says_how_to_set_it() {
        check_error("data_dir = \"/d\"\n", &["node_id", "--node-id"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        check_error("node_id = 0\ndata_dir = \"/d\"\n", &["node_id", "positive"]);
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\napi_addr = \"localhost\"\n",
            &["api_addr", "localhost"],
        );
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\napi_addr = \"127.0.0.1:5\"\npeer_addr = \"127.0.0.1:5\"\n",
            &["peer_addr", "different ports"],
        );
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\n[raft]\nheartbeat_interval_ms = 500\nelection_timeout_min_ms = 400\n",
            &["raft.election_timeout_min_ms"],
        );
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\ncluster_name = \"a b\"\n",
            &["cluster_name"],
        );
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\nadvertise_peer_addr = \"nohost\"\n",
            &["advertise_peer_addr"],
        );
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\n[health]\nprobe_addr = \"sip.example\"\n",
            &["health.probe_addr", "sip.example"],
        );
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\n[health]\npeer_liveness_timeout_ms = 50\n",
            &["health.peer_liveness_timeout_ms", "at least 300"],
        );
    }

    #[test]
    fn health_options_come_from_the_file_and_flags() {
        let config = resolve(
            "node_id = 1\ndata_dir = \"/d\"\n[health]\nprobe_addr = \"10.0.0.1:5060\"\npeer_liveness_timeout_ms = 800\n",
            Overrides {
                peer_liveness_timeout_ms: Some(2_000),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.probe_addr.to_string(), "10.0.0.1:5060");
        assert_eq!(config.peer_liveness_timeout_ms, 2_000);
        let defaults = resolve("node_id = 1\ndata_dir = \"/d\"\n", Overrides::default()).unwrap();
        assert_eq!(defaults.probe_addr.to_string(), DEFAULT_PROBE_ADDR);
    }

    #[test]
    fn stream_and_answer_limits_come_from_the_file_and_flags() {
        let config = resolve(
            "node_id = 1\ndata_dir = \"/d\"\n[streams]\nmax_watch_streams = 8\nmax_export_streams = 2\n[answers]\nmax_legs = 10\n",
            Overrides {
                max_legs: Some(12),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(
            config.service_limits,
            ServiceLimits {
                max_watch_streams: 8,
                max_export_streams: 2,
                max_legs: 12,
            }
        );
        let defaults = resolve("node_id = 1\ndata_dir = \"/d\"\n", Overrides::default()).unwrap();
        assert_eq!(defaults.service_limits, ServiceLimits::default());
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\n[streams]\nmax_watch_streams = 0\n",
            &["streams.max_watch_streams", "must be 1 to"],
        );
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\n[answers]\nmax_legs = 5000\n",
            &["answers.max_legs", "must be 1 to 1000"],
        );
    }
}
