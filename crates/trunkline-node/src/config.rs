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
/// Free space kept on the data folder's disk by default: room for a few thousand of the
/// largest writes (4 MiB), sled's own rewrites and a snapshot of a typical state.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;
/// sled's page cache unless `storage.cache_bytes` says otherwise.
pub const DEFAULT_STORE_CACHE_BYTES: u64 = trunkline_store::DEFAULT_CACHE_BYTES;
/// Log bytes appended since the last snapshot that make a node build one (and then purge):
/// sled keeps the log's values in memory, so this bounds that memory where the entry count
/// alone (`raft.snapshot_logs_since_last`) would let 10,000 rate-deck chunks hold 2.5 GB.
pub const DEFAULT_SNAPSHOT_AFTER_LOG_BYTES: u64 = 64 * 1024 * 1024;
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
    /// The HTTP/1.1 JSON listener for proxies without gRPC (`docs/http-api.md`); off when
    /// left out.
    pub http_addr: Option<String>,
    /// The Prometheus `/metrics` listener (plain HTTP, or TLS like the client listener);
    /// off when left out.
    pub metrics_addr: Option<String>,
    pub advertise_api_addr: Option<String>,
    pub advertise_peer_addr: Option<String>,
    #[serde(default)]
    pub raft: RaftFileConfig,
    #[serde(default)]
    pub log: LogFileConfig,
    #[serde(default)]
    pub health: HealthFileConfig,
    #[serde(default)]
    pub storage: StorageFileConfig,
    #[serde(default)]
    pub security: SecurityFileConfig,
    #[serde(default)]
    pub tls: TlsFileConfig,
    #[serde(default)]
    pub alerts: AlertsFileConfig,
    #[serde(default)]
    pub limits: LimitsFileConfig,
    #[serde(default)]
    pub streams: StreamsFileConfig,
    #[serde(default)]
    pub answers: AnswersFileConfig,
}

/// The `[security]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityFileConfig {
    /// Refuse every client call without a valid token; on when left out (`--no-auth` turns
    /// it off).
    pub require_auth: Option<bool>,
    /// The file of encryption keys for the data folder (`--encryption-key-file`).
    pub encryption_key_file: Option<PathBuf>,
}

/// The `[alerts]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFileConfig {
    /// The CAs (PEM) an https alert webhook's certificate is checked against
    /// (`--webhook-ca-file`); left out: the system's bundle.
    pub webhook_ca_file: Option<PathBuf>,
}

/// The `[tls]` section: the node's certificate, its key and the cluster CA (PEM files).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// Serve plaintext (`--insecure`): refused unless both listeners are on loopback.
    pub insecure: Option<bool>,
}

/// How the listeners talk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// TLS on both listeners, mTLS between nodes.
    Tls(trunkline_tls::TlsFiles),
    /// Plaintext, on loopback only (`--insecure`; what `trunkline dev` runs).
    Insecure,
}

impl Transport {
    fn resolve(
        file: &TlsFileConfig,
        overrides: &Overrides,
        listeners: [(&'static str, SocketAddr); 2],
    ) -> Result<Transport, ConfigError> {
        let insecure = overrides.insecure || file.insecure.unwrap_or(false);
        let cert = overrides.tls_cert_file.clone().or(file.cert_file.clone());
        let key = overrides.tls_key_file.clone().or(file.key_file.clone());
        let ca = overrides.tls_ca_file.clone().or(file.ca_file.clone());
        if insecure {
            if cert.is_some() || key.is_some() || ca.is_some() {
                return Err(invalid(
                    "tls.insecure",
                    "given together with TLS files: drop --insecure to serve TLS, or the files \
                     to serve plaintext on loopback",
                ));
            }
            for (key, address) in listeners {
                if !address.ip().is_loopback() {
                    return Err(invalid(
                        "tls.insecure",
                        format!(
                            "refused: {key} {address} is not a loopback address, and plaintext \
                             would carry tokens and routing data over the network; give the \
                             node a certificate (tls.cert_file, tls.key_file, tls.ca_file; \
                             `trunkctl certs init` makes them) or listen on 127.0.0.1"
                        ),
                    ));
                }
            }
            return Ok(Transport::Insecure);
        }
        match (cert, key, ca) {
            (Some(cert), Some(key), Some(ca)) => Ok(Transport::Tls(trunkline_tls::TlsFiles { cert, key, ca })),
            (None, None, None) => Err(invalid(
                "tls",
                "no certificate: set tls.cert_file, tls.key_file and tls.ca_file (--tls-cert-file, \
                 --tls-key-file, --tls-ca-file; `trunkctl certs init` and `trunkctl certs issue \
                 node` make them), or pass --insecure to serve plaintext on loopback only",
            )),
            (cert, key, _) => {
                let missing = if cert.is_none() {
                    "tls.cert_file"
                } else if key.is_none() {
                    "tls.key_file"
                } else {
                    "tls.ca_file"
                };
                Err(invalid(
                    "tls",
                    format!("{missing} is not set: TLS needs the certificate, its key and the cluster CA"),
                ))
            }
        }
    }
}

/// The keys that seal what the node stores (see `trunkline_store::seal`). Compared by
/// identity and printed by key id only: a key never reaches a log line.
#[derive(Clone, Debug)]
pub struct EncryptionKeys(pub std::sync::Arc<trunkline_store::seal::KeyRing>);

impl PartialEq for EncryptionKeys {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for EncryptionKeys {}

impl EncryptionKeys {
    /// Keys from `TRUNKLINE_ENCRYPTION_KEYS`'s text, else from the key file; none if neither.
    fn resolve(text: Option<&str>, file: Option<&Path>) -> Result<Option<Self>, ConfigError> {
        let (key, text) = match (text, file) {
            (Some(text), _) => ("TRUNKLINE_ENCRYPTION_KEYS", text.to_owned()),
            (None, Some(path)) => (
                "security.encryption_key_file",
                std::fs::read_to_string(path).map_err(|error| {
                    invalid(
                        "security.encryption_key_file",
                        format!("can't read {}: {error}", path.display()),
                    )
                })?,
            ),
            (None, None) => return Ok(None),
        };
        trunkline_store::seal::KeyRing::parse(&text)
            .map(|keys| Some(EncryptionKeys(std::sync::Arc::new(keys))))
            .map_err(|reason| {
                invalid(
                    key,
                    format!("{reason} (one `ID HEX` line per key, 64 hex digits; the last seals)"),
                )
            })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFileConfig {
    /// Client writes are refused while the data folder's disk has less free space than this.
    pub min_free_bytes: Option<u64>,
    /// sled's page cache, in bytes (mostly the log tail replication reads).
    pub cache_bytes: Option<u64>,
}

/// The `[limits]` section: bounds on what clients and peers can make a listener hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFileConfig {
    pub api_max_connections: Option<usize>,
    pub peer_max_connections: Option<usize>,
    pub connection_idle_timeout_ms: Option<u64>,
    pub http2_max_concurrent_streams: Option<u32>,
    pub http2_stream_window_bytes: Option<u32>,
    pub http2_connection_window_bytes: Option<u32>,
    pub api_max_buffered_request_bytes: Option<usize>,
    pub peer_request_timeout_ms: Option<u64>,
    pub peer_max_in_flight: Option<usize>,
}

/// `[streams]`: open server streams per node (see `limits.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsFileConfig {
    pub max_watch_streams: Option<usize>,
    pub max_export_streams: Option<usize>,
    pub max_route_streams: Option<usize>,
}

/// `[answers]`: the size of route answers (see `limits.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswersFileConfig {
    pub max_legs: Option<usize>,
    /// How long a proxy waits for any reply to a leg before moving on (rtjson `fr_timer`).
    pub leg_reply_timeout_ms: Option<u64>,
    /// How long a proxy lets a leg ring (rtjson `fr_inv_timer`).
    pub leg_ring_timeout_ms: Option<u64>,
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
    pub snapshot_after_log_bytes: Option<u64>,
    pub max_in_snapshot_log_to_keep: Option<u64>,
    pub install_snapshot_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFileConfig {
    /// A tracing filter such as `info` or `trunkline_node=debug,info`.
    pub level: Option<String>,
    /// `text` (the default) or `json`: one JSON object a line.
    pub format: Option<crate::telemetry::LogFormat>,
    /// Where spans go over OTLP/gRPC (`http://collector:4317`); no traces when left out.
    pub otlp_endpoint: Option<String>,
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
    /// HTTP/1.1 JSON listener (host:port) for proxies without gRPC, such as Kamailio's
    /// http_client with rtjson (docs/http-api.md); off unless given.
    #[arg(long, env = "TRUNKLINE_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// Prometheus metrics listener (host:port) serving /metrics; off unless given. Bind it
    /// where only your monitoring reaches: it needs no token.
    #[arg(long, env = "TRUNKLINE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
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
    /// Also build a snapshot once this many bytes of log were appended since the last one
    /// (the log's values sit in memory until purged); 0: by entry count only.
    #[arg(long, env = "TRUNKLINE_SNAPSHOT_AFTER_LOG_BYTES")]
    pub snapshot_after_log_bytes: Option<u64>,
    /// Log entries kept after a snapshot, so slow followers catch up without one.
    #[arg(long, env = "TRUNKLINE_MAX_IN_SNAPSHOT_LOG_TO_KEEP")]
    pub max_in_snapshot_log_to_keep: Option<u64>,
    /// A tracing filter such as `info` or `trunkline_node=debug,info`.
    #[arg(long, env = "TRUNKLINE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// How log lines are written to standard error: text, or json (one object a line).
    #[arg(long, env = "TRUNKLINE_LOG_FORMAT", value_enum)]
    pub log_format: Option<crate::telemetry::LogFormat>,
    /// An OpenTelemetry collector's OTLP/gRPC endpoint (http://host:4317): the node exports
    /// a span per RPC (continuing a caller's W3C traceparent) and its steps. Off unless given.
    #[arg(long, env = "TRUNKLINE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// host:port the UDP OPTIONS probes to gateways leave from.
    #[arg(long, env = "TRUNKLINE_PROBE_ADDR")]
    pub probe_addr: Option<String>,
    /// A member silent to pings this long stops probing; others take its gateways over.
    #[arg(long, env = "TRUNKLINE_PEER_LIVENESS_TIMEOUT_MS")]
    pub peer_liveness_timeout_ms: Option<u64>,
    /// A file of keys (`ID HEX` lines, 32 bytes as 64 hex digits each; the last one seals) that
    /// encrypt everything the node stores; a folder written with keys opens only with them.
    #[arg(long, env = "TRUNKLINE_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// The CAs (a PEM file) an https alert webhook's certificate is checked against; left
    /// out: the system's bundle.
    #[arg(long, env = "TRUNKLINE_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
    /// The keys themselves, as the key file holds them (for containers); beats the file.
    #[arg(
        long,
        env = "TRUNKLINE_ENCRYPTION_KEYS",
        hide = true,
        hide_env_values = true
    )]
    pub encryption_keys: Option<String>,
    /// Refuse every client call without a valid token (`trunkctl token create`): the default.
    /// The first admin token comes from `trunkctl cluster init`, which then needs the node's
    /// bootstrap secret (TRUNKLINE_BOOTSTRAP_TOKEN, else the file `bootstrap.token` in the
    /// data folder).
    #[arg(long, env = "TRUNKLINE_REQUIRE_AUTH")]
    pub require_auth: bool,
    /// Answer every caller without a token: only where something in front authenticates
    /// (logs a warning at start).
    #[arg(long, env = "TRUNKLINE_NO_AUTH", conflicts_with = "require_auth")]
    pub no_auth: bool,
    /// This node's certificate (PEM, then any intermediates); it must name
    /// node-<id>.<cluster>.trunkline (`trunkctl certs issue node`).
    #[arg(long, env = "TRUNKLINE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "TRUNKLINE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// The cluster CA (PEM): only nodes with a certificate from it speak Raft to this one.
    #[arg(long, env = "TRUNKLINE_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Serve plaintext instead of TLS: for development on loopback only (refused on any other
    /// address).
    #[arg(long, env = "TRUNKLINE_INSECURE")]
    pub insecure: bool,
    /// Refuse client writes (RESOURCE_EXHAUSTED) while the data folder's disk has less free
    /// space than this many bytes; 0 turns the check off.
    #[arg(long, env = "TRUNKLINE_MIN_FREE_BYTES")]
    pub min_free_bytes: Option<u64>,
    /// sled's page cache in bytes (default 64 MiB, at least 1 MiB): part of the node's
    /// resident memory whatever the decks' size.
    #[arg(long, env = "TRUNKLINE_STORE_CACHE_BYTES")]
    pub store_cache_bytes: Option<u64>,
    /// Open connections on the client listener; beyond it new ones are closed at once.
    #[arg(long, env = "TRUNKLINE_API_MAX_CONNECTIONS")]
    pub api_max_connections: Option<usize>,
    /// Open connections on the peer listener; beyond it new ones are closed at once.
    #[arg(long, env = "TRUNKLINE_PEER_MAX_CONNECTIONS")]
    pub peer_max_connections: Option<usize>,
    /// A connection that carries no request for this long is closed (both listeners).
    #[arg(long, env = "TRUNKLINE_CONNECTION_IDLE_TIMEOUT_MS")]
    pub connection_idle_timeout_ms: Option<u64>,
    /// HTTP/2 streams a client may open at once on one connection (client listener).
    #[arg(long, env = "TRUNKLINE_HTTP2_MAX_CONCURRENT_STREAMS")]
    pub http2_max_concurrent_streams: Option<u32>,
    /// HTTP/2 flow-control window per stream on the client listener.
    #[arg(long, env = "TRUNKLINE_HTTP2_STREAM_WINDOW_BYTES")]
    pub http2_stream_window_bytes: Option<u32>,
    /// HTTP/2 flow-control window per connection on the client listener.
    #[arg(long, env = "TRUNKLINE_HTTP2_CONNECTION_WINDOW_BYTES")]
    pub http2_connection_window_bytes: Option<u32>,
    /// Request bytes read and not yet decoded across the client listener.
    #[arg(long, env = "TRUNKLINE_API_MAX_BUFFERED_REQUEST_BYTES")]
    pub api_max_buffered_request_bytes: Option<usize>,
    /// A peer request without its own deadline ends after this long.
    #[arg(long, env = "TRUNKLINE_PEER_REQUEST_TIMEOUT_MS")]
    pub peer_request_timeout_ms: Option<u64>,
    /// Requests in flight on the peer listener before new ones are shed.
    #[arg(long, env = "TRUNKLINE_PEER_MAX_IN_FLIGHT")]
    pub peer_max_in_flight: Option<usize>,
    /// Open WatchEvents streams this node serves at once; more are refused.
    #[arg(long, env = "TRUNKLINE_MAX_WATCH_STREAMS")]
    pub max_watch_streams: Option<usize>,
    /// Open ExportRates streams this node serves at once; more are refused.
    #[arg(long, env = "TRUNKLINE_MAX_EXPORT_STREAMS")]
    pub max_export_streams: Option<usize>,
    /// Open RouteStream streams (proxies' lookup streams) this node serves at once.
    #[arg(long, env = "TRUNKLINE_MAX_ROUTE_STREAMS")]
    pub max_route_streams: Option<usize>,
    /// Legs in one route answer (RouteOutbound, an inbound number target).
    #[arg(long, env = "TRUNKLINE_MAX_LEGS")]
    pub max_legs: Option<usize>,
}

/// What one client's streams and answers may make a node hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLimits {
    pub max_watch_streams: usize,
    pub max_export_streams: usize,
    pub max_route_streams: usize,
    pub max_legs: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            max_watch_streams: limits::DEFAULT_MAX_WATCH_STREAMS,
            max_export_streams: limits::DEFAULT_MAX_EXPORT_STREAMS,
            max_route_streams: limits::DEFAULT_MAX_ROUTE_STREAMS,
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
            max_route_streams: bounded(
                "streams.max_route_streams",
                overrides
                    .max_route_streams
                    .or(streams.max_route_streams)
                    .unwrap_or(defaults.max_route_streams),
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

/// The timers an HTTP route answer gives the proxy for each leg (rtjson's `fr_timer` and
/// `fr_inv_timer`), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegTimers {
    /// No reply at all from a gateway: it is moved past well before a caller gives up (the
    /// SIP default, 32 s, would hold a call on a silent carrier for half a minute).
    pub reply_ms: u64,
    /// Ringing.
    pub ring_ms: u64,
}

impl Default for LegTimers {
    fn default() -> Self {
        LegTimers {
            reply_ms: 3_000,
            ring_ms: 120_000,
        }
    }
}

impl LegTimers {
    /// Longest timer accepted: ten minutes.
    const MAX_MS: u64 = 600_000;

    fn resolve(answers: &AnswersFileConfig) -> Result<LegTimers, ConfigError> {
        let defaults = LegTimers::default();
        let bounded = |key: &'static str, value: Option<u64>, default: u64| {
            let value = value.unwrap_or(default);
            if (100..=Self::MAX_MS).contains(&value) {
                Ok(value)
            } else {
                Err(invalid(
                    key,
                    format!("({value}) must be 100 to {} milliseconds", Self::MAX_MS),
                ))
            }
        };
        Ok(LegTimers {
            reply_ms: bounded(
                "answers.leg_reply_timeout_ms",
                answers.leg_reply_timeout_ms,
                defaults.reply_ms,
            )?,
            ring_ms: bounded(
                "answers.leg_ring_timeout_ms",
                answers.leg_ring_timeout_ms,
                defaults.ring_ms,
            )?,
        })
    }
}

/// Bounds on what clients and peers can make a listener hold; the defaults and why are in
/// [`crate::limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    pub api_max_connections: usize,
    pub peer_max_connections: usize,
    pub connection_idle_timeout_ms: u64,
    pub http2_max_concurrent_streams: u32,
    pub http2_stream_window_bytes: u32,
    pub http2_connection_window_bytes: u32,
    pub api_max_buffered_request_bytes: usize,
    pub peer_request_timeout_ms: u64,
    pub peer_max_in_flight: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        use crate::limits;
        LimitsConfig {
            api_max_connections: limits::API_MAX_CONNECTIONS,
            peer_max_connections: limits::PEER_MAX_CONNECTIONS,
            connection_idle_timeout_ms: duration_ms(limits::CONNECTION_IDLE_TIMEOUT),
            http2_max_concurrent_streams: limits::API_HTTP2_MAX_CONCURRENT_STREAMS,
            http2_stream_window_bytes: limits::API_HTTP2_STREAM_WINDOW_BYTES,
            http2_connection_window_bytes: limits::API_HTTP2_CONNECTION_WINDOW_BYTES,
            api_max_buffered_request_bytes: limits::API_MAX_BUFFERED_REQUEST_BYTES,
            peer_request_timeout_ms: duration_ms(limits::PEER_REQUEST_TIMEOUT),
            peer_max_in_flight: limits::PEER_MAX_IN_FLIGHT,
        }
    }
}

impl LimitsConfig {
    pub fn connection_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.connection_idle_timeout_ms)
    }

    pub fn peer_request_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_request_timeout_ms)
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Shortest idle timeout accepted: below it a client's connection could close between two
/// requests of one command.
pub const MIN_CONNECTION_IDLE_TIMEOUT_MS: u64 = 100;

/// Raft timings and snapshot policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub snapshot_logs_since_last: u64,
    /// A snapshot is also built once this many bytes of log were appended since the last
    /// one; 0 turns it off.
    pub snapshot_after_log_bytes: u64,
    pub max_in_snapshot_log_to_keep: u64,
    pub install_snapshot_timeout_ms: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            // openraft 0.9 keeps a leader's lease for election_timeout_max and a follower
            // calls an election only after lease + a random timeout without a heartbeat:
            // 500 to 600 ms here (ten heartbeats missed at the least), so a killed leader
            // is replaced within a second even when the first candidate, being behind, is
            // refused and the next one waits out another timeout. (At 400-800 it took
            // 1.2-1.6 s; at 250-350 with 100 ms heartbeats, p50 1.04 s and p99 2.9 s; here p50
            // 0.83 s, p99 2.2 s over the short suite's 20 kills.) `successor.rs` calls the
            // election 350 ms after the last heartbeat on one survivor (the next ones a stagger
            // later): p50 0.63 s, p99 0.71 s, one term per kill.
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 200,
            election_timeout_max_ms: 300,
            snapshot_logs_since_last: 10_000,
            snapshot_after_log_bytes: DEFAULT_SNAPSHOT_AFTER_LOG_BYTES,
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
    /// The HTTP/1.1 JSON listener; `None`: off.
    pub http_addr: Option<SocketAddr>,
    /// The Prometheus `/metrics` listener; `None`: off.
    pub metrics_addr: Option<SocketAddr>,
    /// The timers an HTTP route answer gives the proxy for each leg.
    pub leg_timers: LegTimers,
    /// `None`: advertise the address actually bound.
    pub advertise_api_addr: Option<String>,
    pub advertise_peer_addr: Option<String>,
    pub raft: RaftConfig,
    pub log_level: String,
    pub log_format: crate::telemetry::LogFormat,
    /// The OTLP/gRPC collector spans go to; `None`: no traces.
    pub otlp_endpoint: Option<String>,
    pub probe_addr: SocketAddr,
    pub peer_liveness_timeout_ms: u64,
    /// Free space kept on the data folder's disk: client writes are refused below it, so
    /// they never drive the store to ENOSPC (`storage.min_free_bytes`).
    pub min_free_bytes: u64,
    /// sled's page cache (`storage.cache_bytes`).
    pub store_cache_bytes: u64,
    pub limits: LimitsConfig,
    pub service_limits: ServiceLimits,
    /// Client calls need a token (`--require-auth`).
    pub require_auth: bool,
    /// What seals the stored data; `None`: stored in clear.
    pub encryption_keys: Option<EncryptionKeys>,
    /// TLS on the listeners, or plaintext on loopback.
    pub transport: Transport,
    /// The CAs an https alert webhook is checked against; `None`: the system's bundle.
    pub webhook_ca_file: Option<PathBuf>,
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
    #[error("{0}")]
    Tls(#[from] trunkline_tls::TlsError),
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

/// A node id is a positive number.
pub fn check_node_id(node_id: u64) -> Result<(), ConfigError> {
    if node_id == 0 {
        return Err(invalid("node_id", "must be a positive number"));
    }
    Ok(())
}

/// A cluster name is 1 to 64 letters, digits, '-', '_' or '.'.
pub fn check_cluster_name(cluster_name: &str) -> Result<(), ConfigError> {
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
    Ok(())
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
        check_node_id(node_id)?;
        let cluster_name = overrides
            .cluster_name
            .clone()
            .or(file.cluster_name)
            .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_owned());
        check_cluster_name(&cluster_name)?;
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
        let http_addr = match overrides.http_addr.as_deref().or(file.http_addr.as_deref()) {
            Some(value) => Some(parse_addr("http_addr", Some(value), "")?),
            None => None,
        };
        let metrics_addr = match overrides
            .metrics_addr
            .as_deref()
            .or(file.metrics_addr.as_deref())
        {
            Some(value) => Some(parse_addr("metrics_addr", Some(value), "")?),
            None => None,
        };
        let mut taken = vec![("api_addr", api_addr), ("peer_addr", peer_addr)];
        for (key, address) in [("http_addr", http_addr), ("metrics_addr", metrics_addr)] {
            let Some(address) = address else { continue };
            if let Some((other, _)) = taken
                .iter()
                .find(|(_, used)| address.port() != 0 && *used == address)
            {
                return Err(invalid(
                    key,
                    format!("{address} is also {other}; each listener needs its own port"),
                ));
            }
            taken.push((key, address));
        }
        let leg_timers = LegTimers::resolve(&file.answers)?;
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
            snapshot_after_log_bytes: overrides
                .snapshot_after_log_bytes
                .or(file.raft.snapshot_after_log_bytes)
                .unwrap_or(defaults.snapshot_after_log_bytes),
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
        let log_format = overrides.log_format.or(file.log.format).unwrap_or_default();
        let otlp_endpoint = overrides.otlp_endpoint.clone().or(file.log.otlp_endpoint);
        if let Some(endpoint) = &otlp_endpoint {
            let usable = endpoint.parse::<http::Uri>().ok().filter(|uri| {
                matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
            });
            if usable.is_none() {
                return Err(invalid(
                    "log.otlp_endpoint",
                    format!("{endpoint:?} is not an http:// or https:// URL with a host (such as http://collector:4317)"),
                ));
            }
        }
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
        let min_free_bytes = overrides
            .min_free_bytes
            .or(file.storage.min_free_bytes)
            .unwrap_or(DEFAULT_MIN_FREE_BYTES);
        let store_cache_bytes = overrides
            .store_cache_bytes
            .or(file.storage.cache_bytes)
            .unwrap_or(trunkline_store::DEFAULT_CACHE_BYTES);
        if store_cache_bytes < trunkline_store::MIN_CACHE_BYTES {
            return Err(invalid(
                "storage.cache_bytes",
                format!(
                    "must be at least {} (1 MiB)",
                    trunkline_store::MIN_CACHE_BYTES
                ),
            ));
        }

        let limits = resolve_limits(&file.limits, overrides, &raft)?;
        let service_limits = ServiceLimits::resolve(&file.streams, &file.answers, overrides)?;
        let webhook_ca_file = overrides
            .webhook_ca_file
            .clone()
            .or(file.alerts.webhook_ca_file.clone());
        if let Some(path) = &webhook_ca_file {
            crate::webhook::trust(Some(path))
                .map_err(|reason| invalid("alerts.webhook_ca_file", reason))?;
        }

        Ok(Config {
            node_id,
            cluster_name,
            data_dir,
            api_addr,
            peer_addr,
            http_addr,
            metrics_addr,
            leg_timers,
            advertise_api_addr,
            advertise_peer_addr,
            raft,
            log_level,
            log_format,
            otlp_endpoint,
            probe_addr,
            peer_liveness_timeout_ms,
            min_free_bytes,
            store_cache_bytes,
            limits,
            service_limits,
            require_auth: match (overrides.require_auth, overrides.no_auth) {
                (true, true) => {
                    return Err(invalid(
                        "security.require_auth",
                        "--require-auth and --no-auth both given; choose one",
                    ))
                }
                (true, false) => true,
                (false, true) => false,
                (false, false) => file.security.require_auth.unwrap_or(true),
            },
            transport: Transport::resolve(
                &file.tls,
                overrides,
                [("api_addr", api_addr), ("peer_addr", peer_addr)],
            )?,
            encryption_keys: EncryptionKeys::resolve(
                overrides.encryption_keys.as_deref(),
                overrides
                    .encryption_key_file
                    .as_deref()
                    .or(file.security.encryption_key_file.as_deref()),
            )?,
            webhook_ca_file,
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

fn resolve_limits(
    file: &LimitsFileConfig,
    overrides: &Overrides,
    raft: &RaftConfig,
) -> Result<LimitsConfig, ConfigError> {
    use crate::limits;
    let defaults = LimitsConfig::default();
    let resolved = LimitsConfig {
        api_max_connections: overrides
            .api_max_connections
            .or(file.api_max_connections)
            .unwrap_or(defaults.api_max_connections),
        peer_max_connections: overrides
            .peer_max_connections
            .or(file.peer_max_connections)
            .unwrap_or(defaults.peer_max_connections),
        connection_idle_timeout_ms: overrides
            .connection_idle_timeout_ms
            .or(file.connection_idle_timeout_ms)
            .unwrap_or(defaults.connection_idle_timeout_ms),
        http2_max_concurrent_streams: overrides
            .http2_max_concurrent_streams
            .or(file.http2_max_concurrent_streams)
            .unwrap_or(defaults.http2_max_concurrent_streams),
        http2_stream_window_bytes: overrides
            .http2_stream_window_bytes
            .or(file.http2_stream_window_bytes)
            .unwrap_or(defaults.http2_stream_window_bytes),
        http2_connection_window_bytes: overrides
            .http2_connection_window_bytes
            .or(file.http2_connection_window_bytes)
            .unwrap_or(defaults.http2_connection_window_bytes),
        api_max_buffered_request_bytes: overrides
            .api_max_buffered_request_bytes
            .or(file.api_max_buffered_request_bytes)
            .unwrap_or(defaults.api_max_buffered_request_bytes),
        peer_request_timeout_ms: overrides
            .peer_request_timeout_ms
            .or(file.peer_request_timeout_ms)
            .unwrap_or(defaults.peer_request_timeout_ms),
        peer_max_in_flight: overrides
            .peer_max_in_flight
            .or(file.peer_max_in_flight)
            .unwrap_or(defaults.peer_max_in_flight),
    };
    for (key, value) in [
        ("limits.api_max_connections", resolved.api_max_connections),
        ("limits.peer_max_connections", resolved.peer_max_connections),
        ("limits.peer_max_in_flight", resolved.peer_max_in_flight),
        (
            "limits.http2_max_concurrent_streams",
            resolved.http2_max_concurrent_streams as usize,
        ),
    ] {
        if value == 0 {
            return Err(invalid(key, "must be above 0"));
        }
    }
    if resolved.connection_idle_timeout_ms < MIN_CONNECTION_IDLE_TIMEOUT_MS {
        return Err(invalid(
            "limits.connection_idle_timeout_ms",
            format!("must be at least {MIN_CONNECTION_IDLE_TIMEOUT_MS}"),
        ));
    }
    for (key, value) in [
        (
            "limits.http2_stream_window_bytes",
            resolved.http2_stream_window_bytes,
        ),
        (
            "limits.http2_connection_window_bytes",
            resolved.http2_connection_window_bytes,
        ),
    ] {
        if !(limits::MIN_HTTP2_WINDOW_BYTES..=limits::MAX_HTTP2_WINDOW_BYTES).contains(&value) {
            return Err(invalid(
                key,
                format!(
                    "({value}) must be from {} to {} (what HTTP/2 allows)",
                    limits::MIN_HTTP2_WINDOW_BYTES,
                    limits::MAX_HTTP2_WINDOW_BYTES
                ),
            ));
        }
    }
    if resolved.http2_connection_window_bytes < resolved.http2_stream_window_bytes {
        return Err(invalid(
            "limits.http2_connection_window_bytes",
            format!(
                "({}) must be at least limits.http2_stream_window_bytes ({}), or one stream \
                 can never use its window",
                resolved.http2_connection_window_bytes, resolved.http2_stream_window_bytes
            ),
        ));
    }
    if resolved.api_max_buffered_request_bytes < limits::API_MAX_MESSAGE_BYTES {
        return Err(invalid(
            "limits.api_max_buffered_request_bytes",
            format!(
                "({}) must be at least the largest request, {} bytes, or such a request \
                 could never be served",
                resolved.api_max_buffered_request_bytes,
                limits::API_MAX_MESSAGE_BYTES
            ),
        ));
    }
    if resolved.peer_request_timeout_ms < raft.install_snapshot_timeout_ms {
        return Err(invalid(
            "limits.peer_request_timeout_ms",
            format!(
                "({}) must be at least raft.install_snapshot_timeout_ms ({}), or snapshot \
                 chunks are cut off",
                resolved.peer_request_timeout_ms, raft.install_snapshot_timeout_ms
            ),
        ));
    }
    Ok(resolved)
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

    /// Resolves `text` with `overrides`; plaintext on loopback unless either mentions TLS
    /// (the tests of other options don't care how the listeners talk).
    fn resolve(text: &str, mut overrides: Overrides) -> Result<Config, ConfigError> {
        let file = FileConfig::parse(Path::new("node.toml"), text)?;
        if !text.contains("[tls]") && overrides.tls_cert_file.is_none() {
            overrides.insecure = true;
        }
        Config::resolve(file, &overrides)
    }

    fn resolve_exactly(text: &str, overrides: Overrides) -> Result<Config, ConfigError> {
        Config::resolve(FileConfig::parse(Path::new("node.toml"), text)?, &overrides)
    }

    #[test]
    fn the_store_cache_is_bounded_by_configuration() {
        let base = "node_id = 1\ndata_dir = \"/d\"\n";
        let default = resolve(base, Overrides::default()).unwrap();
        assert_eq!(
            default.store_cache_bytes,
            trunkline_store::DEFAULT_CACHE_BYTES
        );
        let from_file = resolve(
            &format!("{base}[storage]\ncache_bytes = 8388608\n"),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(from_file.store_cache_bytes, 8 * 1024 * 1024);
        let overridden = resolve(
            &format!("{base}[storage]\ncache_bytes = 8388608\n"),
            Overrides {
                store_cache_bytes: Some(2 * 1024 * 1024),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(overridden.store_cache_bytes, 2 * 1024 * 1024);
        let error = resolve(
            &format!("{base}[storage]\ncache_bytes = 4096\n"),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("storage.cache_bytes"), "{error}");
        assert!(error.contains("at least"), "{error}");
    }

    #[test]
    fn a_node_without_certificates_or_insecure_refuses_to_start_and_says_how() {
        let error = resolve_exactly("node_id = 1\ndata_dir = \"/d\"\n", Overrides::default())
            .unwrap_err()
            .to_string();
        for needle in ["tls.cert_file", "trunkctl certs init", "--insecure"] {
            assert!(error.contains(needle), "{needle:?} not in {error}");
        }
    }

    #[test]
    fn insecure_is_refused_on_an_address_other_machines_reach() {
        for (text, key) in [
            ("api_addr = \"0.0.0.0:7400\"\n", "api_addr 0.0.0.0:7400"),
            ("peer_addr = \"10.1.2.3:7401\"\n", "peer_addr 10.1.2.3:7401"),
        ] {
            let text = format!("node_id = 1\ndata_dir = \"/d\"\n{text}");
            let overrides = Overrides {
                insecure: true,
                ..Overrides::default()
            };
            let error = resolve_exactly(&text, overrides).unwrap_err().to_string();
            assert!(error.contains("tls.insecure"), "{error}");
            assert!(error.contains(key), "{error}");
            assert!(error.contains("not a loopback address"), "{error}");
        }
        let overrides = Overrides {
            insecure: true,
            ..Overrides::default()
        };
        let config = resolve_exactly("node_id = 1\ndata_dir = \"/d\"\n", overrides).unwrap();
        assert_eq!(config.transport, Transport::Insecure);
    }

    #[test]
    fn tls_needs_all_three_files_and_not_insecure_as_well() {
        let text =
            "node_id = 1\ndata_dir = \"/d\"\n[tls]\ncert_file = \"n.pem\"\nkey_file = \"n.key\"\n";
        let error = resolve_exactly(text, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("tls.ca_file is not set"), "{error}");
        let full = format!("{text}ca_file = \"ca.pem\"\n");
        let config = resolve_exactly(&full, Overrides::default()).unwrap();
        assert!(
            matches!(config.transport, Transport::Tls(ref files) if files.ca == Path::new("ca.pem"))
        );
        let overrides = Overrides {
            insecure: true,
            ..Overrides::default()
        };
        let error = resolve_exactly(&full, overrides).unwrap_err().to_string();
        assert!(error.contains("together with TLS files"), "{error}");
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
        assert!(config.require_auth);
        config.openraft().unwrap();
    }

    #[test]
    fn an_unreadable_webhook_ca_file_is_refused_naming_its_key() {
        check_error(
            "node_id = 1\ndata_dir = \"/d\"\n[alerts]\nwebhook_ca_file = \"/nonexistent/ca.pem\"\n",
            &["alerts.webhook_ca_file", "/nonexistent/ca.pem"],
        );
        let folder = tempfile::tempdir().unwrap();
        let not_pem = folder.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let error = resolve(
            "node_id = 1\ndata_dir = \"/d\"\n",
            Overrides {
                webhook_ca_file: Some(not_pem),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("alerts.webhook_ca_file"), "{error}");
    }

    #[test]
    fn a_minimal_file_gets_defaults() {
        let config = resolve("node_id = 3\ndata_dir = \"/d\"\n", Overrides::default()).unwrap();
        assert_eq!(config.node_id, 3);
        // Deny by default: a file that says nothing requires tokens.
        assert!(config.require_auth);
        let open = resolve(
            "node_id = 3\ndata_dir = \"/d\"\n",
            Overrides {
                no_auth: true,
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(!open.require_auth);
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
    fn limits_come_from_the_file_and_flags_and_default_to_the_named_limits() {
        let config = resolve(
            "node_id = 1\ndata_dir = \"/d\"\n[limits]\napi_max_connections = 10\nconnection_idle_timeout_ms = 1000\n",
            Overrides {
                api_max_connections: Some(20),
                peer_max_in_flight: Some(7),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.limits.api_max_connections, 20);
        assert_eq!(config.limits.peer_max_in_flight, 7);
        assert_eq!(
            config.limits.connection_idle_timeout(),
            Duration::from_secs(1)
        );
        let defaults = resolve("node_id = 1\ndata_dir = \"/d\"\n", Overrides::default()).unwrap();
        assert_eq!(
            defaults.limits.api_max_buffered_request_bytes,
            crate::limits::API_MAX_BUFFERED_REQUEST_BYTES
        );
        assert_eq!(
            defaults.limits.peer_request_timeout(),
            crate::limits::PEER_REQUEST_TIMEOUT
        );
    }

    #[test]
    fn bad_limits_name_their_key() {
        let base = "node_id = 1\ndata_dir = \"/d\"\n[limits]\n";
        check_error(
            &format!("{base}api_max_connections = 0\n"),
            &["limits.api_max_connections", "above 0"],
        );
        check_error(
            &format!("{base}connection_idle_timeout_ms = 5\n"),
            &["limits.connection_idle_timeout_ms", "at least"],
        );
        check_error(
            &format!("{base}http2_stream_window_bytes = 100\n"),
            &["limits.http2_stream_window_bytes", "65535"],
        );
        check_error(
            &format!("{base}http2_stream_window_bytes = 2000000\nhttp2_connection_window_bytes = 1000000\n"),
            &["limits.http2_connection_window_bytes", "at least"],
        );
        check_error(
            &format!("{base}api_max_buffered_request_bytes = 1000\n"),
            &["limits.api_max_buffered_request_bytes", "largest request"],
        );
        check_error(
            &format!("{base}peer_request_timeout_ms = 1000\n"),
            &[
                "limits.peer_request_timeout_ms",
                "install_snapshot_timeout_ms",
            ],
        );
        check_error(
            &format!("{base}max_connections = 5\n"),
            &["unknown field `max_connections`"],
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
            "node_id = 1\ndata_dir = \"/d\"\n[streams]\nmax_watch_streams = 8\nmax_export_streams = 2\nmax_route_streams = 3\n[answers]\nmax_legs = 10\n",
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
                max_route_streams: 3,
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
