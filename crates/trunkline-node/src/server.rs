//! Starting and stopping a node: bind both listeners, open the data folder, start Raft, serve
//! the client and peer services, and shut down gracefully on a signal.
//!
//! The order matters for "bad input damages nothing": ports are bound before the data folder
//! is opened, and the folder's identity is checked before anything is written to it.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::Server;
use tower::ServiceBuilder;
use trunkline_api::v1::{
    admin_service_server::AdminServiceServer, internal::raft_service_server::RaftServiceServer,
    route_service_server::RouteServiceServer,
};
use trunkline_store::{Identity, Node, Store};

use crate::{
    admin::AdminApi,
    auth::{AuthLayer, Authenticator},
    body_budget::BodyBudgetLayer,
    cdrs::Recorder,
    cluster::Cluster,
    config::{Config, ConfigError, LimitsConfig, ServiceLimits, Transport},
    health::HealthMonitor,
    limits,
    listener::{self, ConnectionActivityLayer, ListenerLimits},
    liveness::Liveness,
    network::{Dialer, PeerNetworkFactory},
    peer_service::PeerService,
    registrar::Registrar,
    route_service::{RouteApi, Writers},
    routing_view::RoutingViews,
    sip_probe::SipProber,
    storage_guard,
    storage_guard::DiskReserve,
    ticker,
    tls::{NodeTls, Side},
    usage::Admitter,
};

/// A node whose listeners are bound and whose Raft is running, not yet serving requests.
pub struct NodeServer {
    cluster: Arc<Cluster>,
    views: Arc<RoutingViews>,
    health: Arc<HealthMonitor>,
    writers: Writers,
    cdr_archive: trunkline_store::CdrArchive,
    service_limits: ServiceLimits,
    api_listener: TcpListener,
    peer_listener: TcpListener,
    /// The HTTP/1.1 JSON listener, when configured.
    http_listener: Option<TcpListener>,
    /// The Prometheus `/metrics` listener, when configured, and what it reads.
    metrics_listener: Option<(TcpListener, crate::metrics::MetricsEndpoint)>,
    leg_timers: crate::config::LegTimers,
    pub api_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    /// Whether stopping ends the process within the grace period, whatever hangs. Set by the
    /// daemon; a node embedded in a test process must not end that process.
    exit_watchdog: bool,
    limits: LimitsConfig,
    authenticator: Arc<Authenticator>,
    resealer: trunkline_store::Resealer,
    /// `None`: plaintext (`--insecure`).
    tls: Option<Arc<NodeTls>>,
    /// Refusals waiting for the audit log (handshakes and peer messages refused for their
    /// certificate, besides the client calls the authenticator records).
    pending_audit: Arc<crate::auth::PendingAudit>,
}

async fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "can't listen on {key} {addr}: another process (perhaps another trunkline) may hold \
             the port; stop it or choose another address with --{}",
            key.replace('_', "-")
        )
    })
}

fn advertised(key: &str, configured: Option<&String>, bound: SocketAddr) -> anyhow::Result<String> {
    if let Some(address) = configured {
        return Ok(address.clone());
    }
    if bound.ip().is_unspecified() {
        anyhow::bail!(
            "advertise_{key}: required when {key} listens on all interfaces ({bound}); set the \
             address other nodes should use, e.g. --advertise-{}=node1.example:{}",
            key.replace('_', "-"),
            bound.port()
        );
    }
    Ok(bound.to_string())
}

impl NodeServer {
    pub async fn start(config: &Config) -> anyhow::Result<NodeServer> {
        let raft_config = Arc::new(config.openraft()?);
        let api_listener = bind("api_addr", config.api_addr).await?;
        let peer_listener = bind("peer_addr", config.peer_addr).await?;
        let http_listener = match config.http_addr {
            Some(address) => Some(bind("http_addr", address).await?),
            None => None,
        };
        let metrics_listener = match config.metrics_addr {
            Some(address) => Some(bind("metrics_addr", address).await?),
            None => None,
        };
        let metrics_addr = match &metrics_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let http_addr = match &http_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let prober = SipProber::bind(config.probe_addr).await.with_context(|| {
            format!(
                "can't bind the SIP probe socket health.probe_addr {} (UDP): another process \
                 may hold the port; choose another with --probe-addr",
                config.probe_addr
            )
        })?;
        let api_addr = api_listener.local_addr()?;
        let peer_addr = peer_listener.local_addr()?;
        let self_node = Node {
            peer_addr: advertised("peer_addr", config.advertise_peer_addr.as_ref(), peer_addr)?,
            api_addr: advertised("api_addr", config.advertise_api_addr.as_ref(), api_addr)?,
        };

        // Certificates are checked before the data folder is opened: a wrong one changes
        // nothing on disk.
        let tls = match &config.transport {
            Transport::Tls(files) => {
                let tls = NodeTls::load(files.clone(), &config.cluster_name, config.node_id)
                    .map_err(ConfigError::Tls)?;
                Some(Arc::new(tls))
            }
            Transport::Insecure => {
                tracing::warn!(
                    "--insecure: both listeners serve plaintext (loopback only); nodes accept \
                     Raft traffic without certificates"
                );
                None
            }
        };
        let identity = Identity {
            cluster_name: config.cluster_name.clone(),
            node_id: config.node_id,
        };
        let data_dir = config.data_dir.clone();
        // Opening checks and locks the folder with blocking file I/O.
        let keys = config.encryption_keys.as_ref().map(|keys| keys.0.clone());
        let cache_bytes = config.store_cache_bytes;
        let store = tokio::task::spawn_blocking(move || {
            Store::open_with(&data_dir, &identity, keys, cache_bytes)
        })
        .await??;
        let resealer = store.resealer();
        let store_metrics = store.metrics();
        let cdr_archive = store.cdr_archive();
        let log_store = store.log_store();
        let log_growth = store.log_growth();
        let state_machine = store.state_machine();
        let reader = state_machine.reader();
        let views = RoutingViews::start(reader.clone()).await;
        let dialer = Dialer::new(tls.clone());
        let network = PeerNetworkFactory {
            cluster_name: config.cluster_name.clone(),
            dialer: dialer.clone(),
            min_deadline: std::time::Duration::from_millis(raft_config.election_timeout_min / 2),
        };
        let raft = openraft::Raft::new(
            config.node_id,
            raft_config,
            network,
            log_store.clone(),
            state_machine,
        )
        .await
        .context("can't start Raft on the data folder")?;
        let cluster = Arc::new(Cluster::new(
            Identity {
                cluster_name: config.cluster_name.clone(),
                node_id: config.node_id,
            },
            self_node,
            raft,
            reader,
            log_store,
            DiskReserve::new(config.data_dir.clone(), config.min_free_bytes),
            dialer,
        ));
        cluster.start_group_commit();
        tokio::spawn(crate::cluster::keep_own_address(cluster.clone()));
        if let Some(tls) = &tls {
            crate::tls::watch(tls.clone());
        }
        tokio::spawn(storage_guard::snapshot_by_log_size(
            cluster.raft.clone(),
            log_growth,
            config.raft.snapshot_after_log_bytes,
            cluster.reader.clone(),
        ));
        let liveness = Liveness::start(
            cluster.clone(),
            std::time::Duration::from_millis(config.peer_liveness_timeout_ms),
        );
        crate::successor::start(
            cluster.clone(),
            crate::successor::Timing {
                lease: std::time::Duration::from_millis(config.raft.election_timeout_max_ms),
                margin: std::time::Duration::from_millis(config.raft.heartbeat_interval_ms),
                stagger: std::time::Duration::from_millis(2 * config.raft.heartbeat_interval_ms),
                retry: std::time::Duration::from_millis(config.raft.election_timeout_max_ms),
            },
        );
        let health = HealthMonitor::start(cluster.clone(), views.clone(), liveness, prober);
        let writers = Writers {
            registrar: Registrar::start(cluster.clone()),
            admitter: Admitter::start(cluster.clone()),
            recorder: Recorder::start(cluster.clone()),
        };
        ticker::start(cluster.clone());
        crate::backfill::start(cluster.clone(), cdr_archive.clone());
        let webhook_tls = crate::webhook::trust(config.webhook_ca_file.as_deref())
            .map_err(|reason| anyhow::anyhow!("alerts.webhook_ca_file: {reason}"))?;
        crate::webhook::start(cluster.clone(), webhook_tls);
        let bootstrap = if config.require_auth && !cluster.is_initialized().await {
            // The banner says how to use it (`trunkctl --token-file ... cluster init`).
            let hash = crate::auth::bootstrap_secret(&config.data_dir)
                .context("can't make or read the node's bootstrap secret")?;
            Some(hash)
        } else {
            None
        };
        tokio::spawn(crate::auth::forget_spent_bootstrap(
            cluster.clone(),
            config.data_dir.join(crate::auth::BOOTSTRAP_FILE),
        ));
        if !config.require_auth {
            tracing::warn!(
                "client calls are not authenticated (--no-auth): anyone who can reach the \
                 client listener can change routing"
            );
        }
        let pending_audit = Arc::new(crate::auth::PendingAudit::default());
        tokio::spawn(crate::auth::flush_audit(
            cluster.clone(),
            pending_audit.clone(),
        ));
        let authenticator = Arc::new(Authenticator::new(
            config.require_auth,
            cluster.reader.clone(),
            bootstrap,
            pending_audit.clone(),
        ));
        let metrics_listener = metrics_listener.map(|listener| {
            let endpoint = crate::metrics::MetricsEndpoint::new(
                cluster.clone(),
                store_metrics,
                writers.recorder.clone(),
                config.data_dir.clone(),
            );
            (listener, endpoint)
        });
        Ok(NodeServer {
            cluster,
            views,
            health,
            writers,
            cdr_archive,
            service_limits: config.service_limits,
            api_listener,
            peer_listener,
            http_listener,
            metrics_listener,
            leg_timers: config.leg_timers,
            api_addr,
            peer_addr,
            http_addr,
            metrics_addr,
            exit_watchdog: false,
            limits: config.limits.clone(),
            authenticator,
            resealer,
            tls,
            pending_audit,
        })
    }

    /// Makes stopping end the process with exit code 1 if it takes longer than
    /// [`limits::SHUTDOWN_GRACE`]: for the daemon, never for a node inside another program.
    pub fn with_exit_watchdog(mut self) -> Self {
        self.exit_watchdog = true;
        self
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn routing_views(&self) -> &Arc<RoutingViews> {
        &self.views
    }

    pub fn health(&self) -> &Arc<HealthMonitor> {
        &self.health
    }

    /// Serves until `shutdown` completes, then drains in-flight requests and stops Raft, all
    /// within [`limits::SHUTDOWN_GRACE`]. If the Raft core stops on a storage error first, the
    /// node reports NOT_SERVING, keeps answering lookups for
    /// [`limits::STORAGE_FAILURE_LOOKUP_WINDOW`], then stops the same way and returns an error.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_sender, stop) = watch::channel(false);
        let stopped = |mut stop: watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<AdminServiceServer<AdminApi>>()
            .await;
        health_reporter
            .set_serving::<RouteServiceServer<RouteApi>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(trunkline_api::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(trunkline_api::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let configured = &self.limits;
        // One route service for both doors: gRPC and the HTTP JSON endpoint.
        let route_api = Arc::new(RouteApi::new(
            self.cluster.clone(),
            self.views.clone(),
            self.health.clone(),
            self.writers.clone(),
            self.service_limits,
        ));
        let serving = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let http_task = self.http_listener.map(|listener| {
            let http = Arc::new(crate::http_api::HttpApi::new(
                route_api.clone(),
                self.authenticator.clone(),
                self.leg_timers,
                serving.clone(),
            ));
            let limits = ListenerLimits {
                name: "http",
                max_connections_key: "limits.api_max_connections",
                max_connections: configured.api_max_connections,
                idle_timeout: configured.connection_idle_timeout(),
                tls: self.tls.clone().map(|tls| (tls, Side::Http1)),
                refusals: self.pending_audit.clone(),
            };
            tokio::spawn(crate::http1::serve(http, listener, limits, stop.clone()))
        });
        let metrics_task = self.metrics_listener.map(|(listener, endpoint)| {
            let limits = ListenerLimits {
                name: "metrics",
                max_connections_key: "limits.api_max_connections",
                max_connections: configured.api_max_connections,
                idle_timeout: configured.connection_idle_timeout(),
                tls: self.tls.clone().map(|tls| (tls, Side::Http1)),
                refusals: self.pending_audit.clone(),
            };
            tokio::spawn(crate::http1::serve(
                Arc::new(endpoint),
                listener,
                limits,
                stop.clone(),
            ))
        });
        // One stack for every client-facing service: each concern one layer.
        let client_layers = ServiceBuilder::new()
            .layer(crate::telemetry::TraceLayer)
            .layer(ConnectionActivityLayer)
            .layer(AuthLayer::new(self.authenticator.clone()))
            .load_shed()
            .concurrency_limit(limits::API_MAX_IN_FLIGHT)
            .layer(BodyBudgetLayer::new(
                configured.api_max_buffered_request_bytes,
                "limits.api_max_buffered_request_bytes",
            ));
        let api_incoming = listener::accept(
            self.api_listener,
            ListenerLimits {
                name: "api",
                max_connections_key: "limits.api_max_connections",
                max_connections: configured.api_max_connections,
                idle_timeout: configured.connection_idle_timeout(),
                tls: self.tls.clone().map(|tls| (tls, Side::Api)),
                refusals: self.pending_audit.clone(),
            },
        );
        let api_server = Server::builder()
            .timeout(limits::API_DEFAULT_TIMEOUT)
            .concurrency_limit_per_connection(limits::API_MAX_IN_FLIGHT_PER_CONNECTION)
            .max_concurrent_streams(configured.http2_max_concurrent_streams)
            .initial_stream_window_size(configured.http2_stream_window_bytes)
            .initial_connection_window_size(configured.http2_connection_window_bytes)
            .http2_keepalive_interval(Some(limits::HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(limits::HTTP2_KEEPALIVE_TIMEOUT))
            .layer(client_layers)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                AdminServiceServer::new(AdminApi::new(
                    self.cluster.clone(),
                    self.health.clone(),
                    stop.clone(),
                    self.service_limits,
                    self.resealer.clone(),
                    self.cdr_archive.clone(),
                    self.tls.clone(),
                ))
                .max_decoding_message_size(limits::API_MAX_MESSAGE_BYTES),
            )
            .add_service(
                RouteServiceServer::from_arc(route_api.clone())
                    .max_decoding_message_size(limits::API_MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(api_incoming, stopped(stop.clone()));
        // The peer listener gets the same kinds of bounds: a timeout for senders that stall,
        // a concurrency limit, a connection cap, windows and a byte budget; with TLS, only
        // members' certificates get through the handshake (and `PeerService` binds each
        // message to the node its certificate names).
        let peer_layers = ServiceBuilder::new()
            .layer(ConnectionActivityLayer)
            .load_shed()
            .concurrency_limit(configured.peer_max_in_flight)
            .layer(BodyBudgetLayer::new(
                limits::PEER_MAX_BUFFERED_REQUEST_BYTES,
                "PEER_MAX_BUFFERED_REQUEST_BYTES",
            ));
        let peer_incoming = listener::accept(
            self.peer_listener,
            ListenerLimits {
                name: "peer",
                max_connections_key: "limits.peer_max_connections",
                max_connections: configured.peer_max_connections,
                idle_timeout: configured.connection_idle_timeout(),
                tls: self.tls.clone().map(|tls| (tls, Side::Peer)),
                refusals: self.pending_audit.clone(),
            },
        );
        let peer_server = Server::builder()
            .timeout(configured.peer_request_timeout())
            .max_concurrent_streams(limits::PEER_HTTP2_MAX_CONCURRENT_STREAMS)
            .initial_stream_window_size(limits::PEER_HTTP2_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(limits::PEER_HTTP2_CONNECTION_WINDOW_BYTES)
            .http2_keepalive_interval(Some(limits::HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(limits::HTTP2_KEEPALIVE_TIMEOUT))
            .layer(peer_layers)
            .add_service(
                RaftServiceServer::new(PeerService::new(
                    self.cluster.clone(),
                    self.health.clone(),
                    self.tls.is_some().then(|| self.pending_audit.clone()),
                    self.cdr_archive.clone(),
                ))
                .max_decoding_message_size(limits::RAFT_MAX_MESSAGE_BYTES)
                .max_encoding_message_size(limits::RAFT_MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(peer_incoming, stopped(stop.clone()));
        let api_task = tokio::spawn(api_server);
        let peer_task = tokio::spawn(peer_server);

        let failure = tokio::select! {
            () = shutdown => None,
            failure = storage_guard::storage_failure(&self.cluster.raft) => Some(failure),
        };
        // From here the process ends within the grace period, whatever hangs (a sled flush
        // on a full disk never returns).
        if self.exit_watchdog {
            start_exit_watchdog();
        }
        if failure.is_some() {
            serving.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        if let Some(failure) = &failure {
            tracing::error!(
                %failure,
                "the Raft core stopped on a storage error: reporting NOT_SERVING, answering \
                 lookups from the last applied state for {:?}, then exiting so a supervisor \
                 restarts the node",
                limits::STORAGE_FAILURE_LOOKUP_WINDOW
            );
            health_reporter
                .set_not_serving::<AdminServiceServer<AdminApi>>()
                .await;
            health_reporter
                .set_not_serving::<RouteServiceServer<RouteApi>>()
                .await;
            health_reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            tokio::time::sleep(limits::STORAGE_FAILURE_LOOKUP_WINDOW).await;
        }
        tracing::info!("shutting down: draining requests");
        serving.store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = stop_sender.send(true);
        self.health.stop();
        let drained = tokio::time::timeout(limits::SHUTDOWN_DRAIN, async {
            let _ = api_task.await;
            let _ = peer_task.await;
            for task in [http_task, metrics_task].into_iter().flatten() {
                let _ = task.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(grace = ?limits::SHUTDOWN_DRAIN, "requests still in flight after the grace period; stopping anyway");
        }
        match tokio::time::timeout(limits::RAFT_SHUTDOWN_TIMEOUT, self.cluster.raft.shutdown())
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "Raft did not shut down cleanly"),
            Err(_) => tracing::warn!("Raft did not shut down in time; stopping anyway"),
        }
        if let Some(failure) = failure {
            anyhow::bail!(
                "stopped because the Raft core failed on a storage error: {failure}; the node \
                 restarts on its data once the cause (a full or failing disk) is fixed"
            );
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Ends the process with exit code 1 if it is still running [`limits::SHUTDOWN_GRACE`] from
/// now: a drain, a Raft shutdown or a store that can't flush (a full disk) must never keep a
/// stopping node alive. A plain thread, so a stuck runtime can't stop it.
fn start_exit_watchdog() {
    let spawned = std::thread::Builder::new()
        .name("exit-watchdog".to_owned())
        .spawn(|| {
            std::thread::sleep(limits::SHUTDOWN_GRACE);
            eprintln!(
                "trunkline: still stopping {:?} after shutdown began; exiting now",
                limits::SHUTDOWN_GRACE
            );
            std::process::exit(1);
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "can't start the exit watchdog");
    }
}

/// Completes on SIGTERM (what `docker stop` and systemd send) or SIGINT (Ctrl-C). The handlers
/// are installed when this is called, not when the future is first polled, so a signal that
/// arrives while the node is still starting is not lost (nor fatal).
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}
