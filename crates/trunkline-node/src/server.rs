//! Starting and stopping a node: bind both listeners, open the data folder, start Raft, serve
//! the client and peer services, and shut down gracefully on a signal.
//!
//! The order matters for "bad input damages nothing": ports are bound before the data folder
//! is opened, and the folder's identity is checked before anything is written to it.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tower::ServiceBuilder;
use trunkline_api::v1::{
    admin_service_server::AdminServiceServer, internal::raft_service_server::RaftServiceServer,
    route_service_server::RouteServiceServer,
};
use trunkline_store::{Identity, Node, Store};

use crate::{
    admin_service::AdminApi,
    cluster::Cluster,
    config::{Config, ServiceLimits},
    health::HealthMonitor,
    limits,
    liveness::Liveness,
    network::PeerNetworkFactory,
    peer_service::PeerService,
    registrar::Registrar,
    route_service::RouteApi,
    routing_view::RoutingViews,
    sip_probe::SipProber,
    ticker,
};

/// A node whose listeners are bound and whose Raft is running, not yet serving requests.
pub struct NodeServer {
    cluster: Arc<Cluster>,
    views: Arc<RoutingViews>,
    health: Arc<HealthMonitor>,
    registrar: Arc<Registrar>,
    service_limits: ServiceLimits,
    api_listener: TcpListener,
    peer_listener: TcpListener,
    pub api_addr: SocketAddr,
    pub peer_addr: SocketAddr,
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

        let identity = Identity {
            cluster_name: config.cluster_name.clone(),
            node_id: config.node_id,
        };
        let data_dir = config.data_dir.clone();
        // Opening checks and locks the folder with blocking file I/O.
        let store =
            tokio::task::spawn_blocking(move || Store::open(&data_dir, &identity)).await??;
        let log_store = store.log_store();
        let state_machine = store.state_machine();
        let reader = state_machine.reader();
        let views = RoutingViews::start(reader.clone()).await;
        let network = PeerNetworkFactory {
            cluster_name: config.cluster_name.clone(),
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
            config.node_id,
            config.cluster_name.clone(),
            self_node,
            raft,
            reader,
            log_store,
        ));
        let liveness = Liveness::start(
            cluster.clone(),
            std::time::Duration::from_millis(config.peer_liveness_timeout_ms),
        );
        let health = HealthMonitor::start(cluster.clone(), views.clone(), liveness, prober);
        let registrar = Registrar::start(cluster.clone());
        ticker::start(cluster.clone());
        Ok(NodeServer {
            cluster,
            views,
            health,
            registrar,
            service_limits: config.service_limits,
            api_listener,
            peer_listener,
            api_addr,
            peer_addr,
        })
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

    /// Serves until `shutdown` completes, then drains in-flight requests for at most
    /// [`limits::SHUTDOWN_GRACE`] and stops Raft.
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

        // One stack for every client-facing service: each concern one layer. Authentication
        // joins this chain.
        let client_layers = ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(limits::API_MAX_IN_FLIGHT);
        let api_server = Server::builder()
            .timeout(limits::API_DEFAULT_TIMEOUT)
            .concurrency_limit_per_connection(limits::API_MAX_IN_FLIGHT_PER_CONNECTION)
            .tcp_nodelay(true)
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
                ))
                .max_decoding_message_size(limits::API_MAX_MESSAGE_BYTES),
            )
            .add_service(
                RouteServiceServer::new(RouteApi::new(
                    self.cluster.clone(),
                    self.views.clone(),
                    self.health.clone(),
                    self.registrar.clone(),
                    self.service_limits,
                ))
                .max_decoding_message_size(limits::API_MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(no_delay(self.api_listener), stopped(stop.clone()));
        let peer_server = Server::builder()
            .tcp_nodelay(true)
            .add_service(
                RaftServiceServer::new(PeerService::new(self.cluster.clone(), self.health.clone()))
                    .max_decoding_message_size(limits::RAFT_MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(limits::RAFT_MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(no_delay(self.peer_listener), stopped(stop.clone()));
        let api_task = tokio::spawn(api_server);
        let peer_task = tokio::spawn(peer_server);

        shutdown.await;
        tracing::info!("shutting down: draining requests");
        let _ = stop_sender.send(true);
        self.health.stop();
        let drained = tokio::time::timeout(limits::SHUTDOWN_GRACE, async {
            let _ = api_task.await;
            let _ = peer_task.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(grace = ?limits::SHUTDOWN_GRACE, "requests still in flight after the grace period; stopping anyway");
        }
        if let Err(error) = self.cluster.raft.shutdown().await {
            tracing::warn!(%error, "Raft did not shut down cleanly");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The listener's connections with Nagle's algorithm off. tonic's `tcp_nodelay` applies only
/// to listeners it binds itself, not to an incoming stream; without this every small answer
/// waits for the peer's delayed ACK (tens of milliseconds a lookup).
fn no_delay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "can't set TCP_NODELAY");
            }
        })
    })
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
