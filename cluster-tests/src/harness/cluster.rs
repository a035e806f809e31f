//! A Trunkline cluster in containers: one container per node on a network of the run's own,
//! formed through the admin API the way an operator would (init on node 1, join, promote).
//!
//! Each node listens on its container address (client port [`API_PORT`], peer port
//! [`PEER_PORT`]) and advertises its client address as is, but its peer address as the
//! harness's proxy in front of it (see [`proxy`](super::proxy)), so Raft traffic between
//! nodes can be slowed down. Containers keep a fixed address and their data volume across
//! kill -9 and restarts, as a real node keeps its host and disk.
//!
//! This file has the raw operations (start, kill, pause, membership, status); the
//! [`nemesis`](super::nemesis) records them as faults.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use tokio::sync::OnceCell;
use trunkline_client::{proto, Client, Retry};

use super::{
    docker::{self, ContainerSpec, Network, RunGuard},
    image,
    proxy::ProxySet,
    HarnessError, Result,
};
use crate::history::NodeId;

/// The nodes' client (gRPC API) port inside their containers.
pub const API_PORT: u16 = 7400;
/// The nodes' peer (Raft) port inside their containers.
pub const PEER_PORT: u16 = 7401;
/// Most nodes a run may start, replacements included.
pub const MAX_NODES: u64 = 9;
/// How long a started container has to answer on its client port.
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the cluster to have a leader.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a membership change may keep failing before the harness gives up.
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long nodes have to agree on the applied state once faults are healed.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of one admin request of the harness (status, membership).
pub const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Request deadline of the per-node clients the workloads use: above the node's own write
/// timeout (5 s), so the node's answer decides the outcome, not the client's impatience.
/// Workloads put tighter deadlines of their own around the requests that need them.
pub const NODE_CLIENT_TIMEOUT: Duration = Duration::from_secs(6);
/// Deadline of a status request while polling.
pub const STATUS_REQUEST_TIMEOUT: Duration = Duration::from_millis(1_500);
/// How often the harness polls while waiting for the cluster.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Pause between retries of a failed membership change.
pub const MEMBERSHIP_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// How the nodes of a cluster are configured.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Voters started and formed at first.
    pub nodes: u64,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Small, so runs exercise snapshots and snapshot installs on restarted nodes.
    pub snapshot_logs_since_last: u64,
    pub log_level: String,
}

/// Environment variables that override [`ClusterOptions::default`], to try other Raft
/// timings (or more logging) without editing the tests.
pub const HEARTBEAT_ENV: &str = "TRUNKLINE_CHAOS_HEARTBEAT_INTERVAL_MS";
pub const ELECTION_MIN_ENV: &str = "TRUNKLINE_CHAOS_ELECTION_TIMEOUT_MIN_MS";
pub const ELECTION_MAX_ENV: &str = "TRUNKLINE_CHAOS_ELECTION_TIMEOUT_MAX_MS";
pub const LOG_LEVEL_ENV: &str = "TRUNKLINE_CHAOS_LOG_LEVEL";
/// Where each container sees the run's PKI folder.
const PKI_DIR: &str = "/pki";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(default)
}

impl Default for ClusterOptions {
    /// Three voters with the node's default Raft timings (failover is measured as
    /// deployed), unless the `TRUNKLINE_CHAOS_*` variables above say otherwise.
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            heartbeat_interval_ms: env_number(HEARTBEAT_ENV, 50),
            election_timeout_min_ms: env_number(ELECTION_MIN_ENV, 200),
            election_timeout_max_ms: env_number(ELECTION_MAX_ENV, 300),
            snapshot_logs_since_last: 500,
            log_level: std::env::var(LOG_LEVEL_ENV)
                .unwrap_or_else(|_| "info,openraft=warn".to_owned()),
        }
    }
}

/// What the harness did to a node last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    Paused,
    /// kill -9; the container is stopped and keeps its data.
    Killed,
    /// Stopped with SIGTERM.
    Stopped,
}

impl NodeState {
    /// The node answers requests (paused and stopped nodes don't).
    pub fn is_up(self) -> bool {
        self == NodeState::Running
    }
}

/// One node of the run.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: NodeId,
    pub container: String,
    pub address: Ipv4Addr,
    /// `address:API_PORT`, what clients use and the node advertises.
    pub api_addr: String,
    /// The proxy in front of the node: what the node advertises to its peers.
    pub peer_addr: SocketAddr,
    pub state: NodeState,
    /// True once joined (or initialised), false again once removed.
    pub member: bool,
}

/// The image, built once per test process and shared by every cluster.
static IMAGE: OnceCell<String> = OnceCell::const_new();

/// A running cluster; dropping it removes its containers and network.
pub struct Cluster {
    pub run_id: String,
    pub cluster_name: String,
    pub image: String,
    pub network: Network,
    pub options: ClusterOptions,
    proxies: ProxySet,
    nodes: Mutex<BTreeMap<NodeId, Node>>,
    /// The run's CA and every node's certificate, mounted read-only into each container.
    pki: tempfile::TempDir,
    /// What the harness's clients dial the nodes with: TLS trusting the run's CA.
    client_tls: Arc<trunkline_tls::rustls::ClientConfig>,
    /// The nodes' bootstrap secret (given to every container), for `InitCluster` only.
    bootstrap: String,
    /// The token every client of the harness calls with: the admin token `InitCluster`
    /// returned (empty before).
    token: Mutex<String>,
    /// One single-endpoint client per node, kept so connections are reused.
    clients: Mutex<BTreeMap<NodeId, Arc<Client>>>,
    /// Last: removes containers and network after everything else is dropped.
    guard: RunGuard,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("run_id", &self.run_id)
            .field("network", &self.network)
            .field("nodes", &self.nodes())
            .finish()
    }
}

impl Cluster {
    /// Builds the image (once per process), creates the run's network and starts and forms
    /// `options.nodes` voters. Logs of a failing run go under `logs_dir`.
    pub async fn start(options: ClusterOptions, logs_dir: &Path) -> Result<Cluster> {
        if options.nodes == 0 || options.nodes > MAX_NODES {
            return Err(HarnessError::Setup(format!(
                "a cluster has 1 to {MAX_NODES} nodes, not {}",
                options.nodes
            )));
        }
        let image = IMAGE
            .get_or_try_init(|| async {
                let binary = image::trunkline_binary()?;
                image::build_image(&binary, &workspace_root()).await
            })
            .await?
            .clone();
        let run_id = new_run_id();
        let guard = RunGuard::new(&run_id);
        guard.set_logs_dir(logs_dir);
        let network = docker::create_network(&run_id, &run_id).await?;
        let pki = tempfile::tempdir().map_err(|error| HarnessError::io("PKI folder", error))?;
        let authority = trunkline_tls::ca::new_ca(&run_id)
            .map_err(|error| HarnessError::Setup(format!("the run's CA: {error}")))?;
        authority
            .write(pki.path(), "ca", false)
            .map_err(|error| HarnessError::io("the run's CA", error))?;
        let client_tls = trunkline_tls::client_config_from_files(&pki.path().join("ca.pem"), None)
            .map_err(|error| HarnessError::Setup(format!("client TLS: {error}")))?;
        let cluster = Cluster {
            cluster_name: run_id.clone(),
            run_id,
            image,
            proxies: ProxySet::new(network.gateway),
            network,
            options: options.clone(),
            nodes: Mutex::new(BTreeMap::new()),
            pki,
            client_tls: Arc::new(client_tls),
            bootstrap: bootstrap_secret(),
            token: Mutex::new(String::new()),
            clients: Mutex::new(BTreeMap::new()),
            guard,
        };
        if let Err(error) = cluster.form().await {
            cluster.save_logs();
            return Err(error);
        }
        Ok(cluster)
    }

    /// Starts the first nodes, initialises node 1 and makes the others voters.
    async fn form(&self) -> Result<()> {
        for node in 1..=self.options.nodes {
            self.launch(node).await?;
        }
        self.init().await?;
        for node in 2..=self.options.nodes {
            self.join(node).await?;
            self.promote(node).await?;
        }
        self.wait_converged(CONVERGE_TIMEOUT).await.map(drop)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Node>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every node the run started, removed ones included.
    pub fn nodes(&self) -> Vec<Node> {
        self.lock().values().cloned().collect()
    }

    pub fn node(&self, node: NodeId) -> Result<Node> {
        self.lock()
            .get(&node)
            .cloned()
            .ok_or_else(|| HarnessError::Setup(format!("no node {node} in this run")))
    }

    /// Members of the cluster, up or not.
    pub fn members(&self) -> Vec<NodeId> {
        self.lock()
            .values()
            .filter(|node| node.member)
            .map(|node| node.id)
            .collect()
    }

    /// Members that answer requests (not killed, paused or stopped).
    pub fn up_members(&self) -> Vec<NodeId> {
        self.lock()
            .values()
            .filter(|node| node.member && node.state.is_up())
            .map(|node| node.id)
            .collect()
    }

    /// The smallest node id not used yet in this run (ids are never reused).
    pub fn next_node_id(&self) -> NodeId {
        self.lock().keys().max().copied().unwrap_or(0) + 1
    }

    pub(crate) fn set_state(&self, node: NodeId, state: NodeState) {
        if let Some(entry) = self.lock().get_mut(&node) {
            entry.state = state;
        }
    }

    fn set_member(&self, node: NodeId, member: bool) {
        if let Some(entry) = self.lock().get_mut(&node) {
            entry.member = member;
        }
    }

    /// The proxies between the nodes.
    pub fn proxies(&self) -> &ProxySet {
        &self.proxies
    }

    /// Writes every container's logs to the logs folder (done on its own when a test
    /// panics with the cluster alive).
    pub fn save_logs(&self) {
        self.guard.save_logs_blocking();
    }

    /// Starts a container for a new node `node` (not yet a member) and waits until it
    /// answers.
    pub async fn launch(&self, node: NodeId) -> Result<Node> {
        if node == 0 || node > MAX_NODES {
            return Err(HarnessError::Setup(format!(
                "node ids go from 1 to {MAX_NODES}, not {node}"
            )));
        }
        if self.lock().contains_key(&node) {
            return Err(HarnessError::Setup(format!("node {node} exists already")));
        }
        let address = self.network.address(node);
        let peer_addr = self
            .proxies
            .add(node, SocketAddr::from((address, PEER_PORT)))
            .await?;
        let api_addr = format!("{address}:{API_PORT}");
        self.issue_certificate(node, address)?;
        let options = &self.options;
        let env = [
            (
                "TRUNKLINE_TLS_CERT_FILE",
                format!("{PKI_DIR}/node-{node}.pem"),
            ),
            (
                "TRUNKLINE_TLS_KEY_FILE",
                format!("{PKI_DIR}/node-{node}.key"),
            ),
            ("TRUNKLINE_TLS_CA_FILE", format!("{PKI_DIR}/ca.pem")),
            ("TRUNKLINE_BOOTSTRAP_TOKEN", self.bootstrap.clone()),
            ("TRUNKLINE_NODE_ID", node.to_string()),
            ("TRUNKLINE_CLUSTER_NAME", self.cluster_name.clone()),
            ("TRUNKLINE_ADVERTISE_API_ADDR", api_addr.clone()),
            ("TRUNKLINE_ADVERTISE_PEER_ADDR", peer_addr.to_string()),
            (
                "TRUNKLINE_HEARTBEAT_INTERVAL_MS",
                options.heartbeat_interval_ms.to_string(),
            ),
            (
                "TRUNKLINE_ELECTION_TIMEOUT_MIN_MS",
                options.election_timeout_min_ms.to_string(),
            ),
            (
                "TRUNKLINE_ELECTION_TIMEOUT_MAX_MS",
                options.election_timeout_max_ms.to_string(),
            ),
            (
                "TRUNKLINE_SNAPSHOT_LOGS_SINCE_LAST",
                options.snapshot_logs_since_last.to_string(),
            ),
            ("TRUNKLINE_LOG_LEVEL", options.log_level.clone()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let container = format!("{}-n{node}", self.run_id);
        docker::run_container(
            &ContainerSpec {
                name: container.clone(),
                hostname: format!("n{node}"),
                image: self.image.clone(),
                network: self.network.name.clone(),
                address,
                env,
                mounts: vec![(self.pki.path().to_owned(), PKI_DIR.to_owned())],
            },
            &self.run_id,
        )
        .await?;
        let entry = Node {
            id: node,
            container,
            address,
            api_addr,
            peer_addr,
            state: NodeState::Running,
            member: false,
        };
        self.lock().insert(node, entry.clone());
        self.wait_answering(node, NODE_READY_TIMEOUT).await?;
        Ok(entry)
    }

    /// Issues node `node`'s certificate (for its container address) into the run's PKI
    /// folder, signed by the run's CA.
    fn issue_certificate(&self, node: NodeId, address: std::net::Ipv4Addr) -> Result<()> {
        let authority = trunkline_tls::ca::Issued::read(self.pki.path(), "ca")
            .map_err(|error| HarnessError::io("the run's CA", error))?;
        trunkline_tls::ca::issue(
            &authority,
            &self.cluster_name,
            &trunkline_tls::ca::Subject::Node {
                id: node,
                hosts: vec![address.to_string()],
            },
            trunkline_tls::ca::DEFAULT_VALIDITY,
        )
        .map_err(|error| HarnessError::Setup(format!("node {node}'s certificate: {error}")))?
        .write(self.pki.path(), &format!("node-{node}"), true)
        .map_err(|error| HarnessError::io(format!("node {node}'s certificate"), error))
        .map(drop)
    }

    /// A client that talks to `node` only (no failover), so what it records is about that
    /// node. Kept per node, so connections are reused.
    pub fn client(&self, node: NodeId) -> Result<Arc<Client>> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&node) {
            return Ok(client.clone());
        }
        let api_addr = self.node(node)?.api_addr;
        let client = Arc::new(
            self.authorised(
                Client::new([api_addr])
                    .map_err(|error| {
                        HarnessError::client(format!("client for node {node}"), error)
                    })?
                    .with_request_timeout(NODE_CLIENT_TIMEOUT),
            )?,
        );
        // Kept only once it carries the admin token (before init it has none).
        if !self.token().is_empty() {
            clients.insert(node, client.clone());
        }
        Ok(client)
    }

    fn token(&self) -> String {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `client` over TLS with the run's CA, and the admin token once there is one.
    fn authorised(&self, client: Client) -> Result<Client> {
        let client = client.with_tls(self.client_tls.clone());
        match self.token() {
            token if token.is_empty() => Ok(client),
            token => client
                .with_token(&token)
                .map_err(|error| HarnessError::client("the admin token", error)),
        }
    }

    /// A failover client over `nodes` (in that order), with `timeout` per request.
    pub fn failover_client(&self, nodes: &[NodeId], timeout: Duration) -> Result<Client> {
        let addresses = nodes
            .iter()
            .map(|node| self.node(*node).map(|node| node.api_addr))
            .collect::<Result<Vec<_>>>()?;
        Client::new(addresses)
            .map(|client| client.with_request_timeout(timeout))
            .map_err(|error| HarnessError::client("failover client", error))
            .and_then(|client| self.authorised(client))
    }

    /// `ClusterStatus` as `node` sees it, with a short deadline.
    pub async fn status(&self, node: NodeId) -> Result<proto::ClusterStatusResponse> {
        let client = self.client(node)?;
        let call = client.admin(Retry::Idempotent, |mut admin| async move {
            admin.cluster_status(proto::ClusterStatusRequest {}).await
        });
        match tokio::time::timeout(STATUS_REQUEST_TIMEOUT, call).await {
            Ok(result) => result
                .map_err(|error| HarnessError::client(format!("status of node {node}"), error)),
            Err(_) => Err(HarnessError::timeout(
                format!("status of node {node}"),
                STATUS_REQUEST_TIMEOUT,
                "",
            )),
        }
    }

    /// Waits until `node` answers on its client port (its gRPC health check, which needs
    /// no token: a node not yet initialised has none to accept).
    pub async fn wait_answering(&self, node: NodeId, timeout: Duration) -> Result<()> {
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        let deadline = Instant::now() + timeout;
        loop {
            let client = self.client(node)?;
            let check = client.call(
                Retry::Idempotent,
                HealthClient::new,
                |mut health| async move { health.check(HealthCheckRequest::default()).await },
            );
            let error = match tokio::time::timeout(STATUS_REQUEST_TIMEOUT, check).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(error)) => HarnessError::client(format!("health of node {node}"), error),
                Err(_) => HarnessError::timeout(
                    format!("health of node {node}"),
                    STATUS_REQUEST_TIMEOUT,
                    "",
                ),
            };
            if Instant::now() > deadline {
                let container = self.node(node)?.container;
                let logs = docker::logs(&container).await.unwrap_or_default();
                return Err(HarnessError::timeout(
                    format!("node {node} answering"),
                    timeout,
                    format!("{error}\n{logs}"),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The leader, as a node that is up and says it leads (the highest term wins when two
    /// do, as during a partition).
    pub async fn leader(&self) -> Option<NodeId> {
        let mut best: Option<(u64, NodeId)> = None;
        for node in self.up_members() {
            if let Ok(status) = self.status(node).await {
                if status.state == "leader" && best.is_none_or(|(term, _)| status.term > term) {
                    best = Some((status.term, node));
                }
            }
        }
        best.map(|(_, node)| node)
    }

    /// The highest Raft term any member that is up reports (0 when none answers). Every
    /// election, won or not, moves a term on by one.
    pub async fn highest_term(&self) -> u64 {
        let mut highest = 0;
        for node in self.up_members() {
            if let Ok(status) = self.status(node).await {
                highest = highest.max(status.term);
            }
        }
        highest
    }

    /// Waits for a leader among the members that are up.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            if Instant::now() > deadline {
                return Err(HarnessError::timeout("a leader", timeout, ""));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Makes node 1 the first voter.
    async fn init(&self) -> Result<()> {
        let client = self
            .client(1)?
            .only(&self.node(1)?.api_addr)
            .and_then(|client| client.with_token(&self.bootstrap))
            .map_err(|error| HarnessError::client("init on node 1", error))?;
        let initialised = client
            .admin(Retry::NotSent, |mut admin| async move {
                admin.init_cluster(proto::InitClusterRequest {}).await
            })
            .await
            .map_err(|error| HarnessError::client("init on node 1", error))?;
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = initialised.admin_token;
        // Clients made before carry no token.
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.set_member(1, true);
        self.wait_for_leader(LEADER_TIMEOUT).await.map(drop)
    }

    /// The members as the cluster sees them, through any node that is up.
    /// The members as the leader sees them: a member being removed never learns of it, and
    /// its own answer would list it forever. Each member that is up is asked in turn (its
    /// own view, no quorum round: a linearizable read must confirm leadership within the
    /// heartbeat interval, which the slow-link faults exceed); the first that answers as
    /// the leader is believed.
    pub async fn list_members(&self) -> Result<Vec<proto::Member>> {
        let mut errors = Vec::new();
        for node in self.up_members() {
            let client = self.client(node)?;
            let call = client.admin(Retry::Idempotent, |mut admin| async move {
                admin
                    .list_members(proto::ListMembersRequest::default())
                    .await
            });
            match tokio::time::timeout(STATUS_REQUEST_TIMEOUT, call).await {
                Ok(Ok(response)) => {
                    let leads = response
                        .read_state
                        .as_ref()
                        .is_some_and(|state| state.leader_id == state.node_id);
                    if leads {
                        return Ok(response.members);
                    }
                    errors.push(format!("n{node} does not lead"));
                }
                Ok(Err(error)) => errors.push(format!("n{node}: {error}")),
                Err(_) => errors.push(format!("n{node}: no answer")),
            }
        }
        Err(HarnessError::Setup(format!(
            "list members: no member answered as the leader ({})",
            errors.join("; ")
        )))
    }

    /// Runs a membership change through the members that are up until `done` says it took
    /// effect; retried because a change may fail while leadership moves (or come back
    /// unknown and have worked).
    async fn change_membership<F, Fut>(
        &self,
        what: &str,
        done: impl Fn(&[proto::Member]) -> bool,
        change: F,
    ) -> Result<()>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), trunkline_client::ClientError>>,
    {
        let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
        let mut last_error = String::new();
        loop {
            match self.list_members().await {
                Ok(members) if done(&members) => return Ok(()),
                Ok(_) => {}
                Err(error) => last_error = format!("listing the members: {error}"),
            }
            if Instant::now() > deadline {
                return Err(HarnessError::timeout(what, MEMBERSHIP_TIMEOUT, last_error));
            }
            let client = self.failover_client(&self.up_members(), ADMIN_REQUEST_TIMEOUT)?;
            match change(client).await {
                Ok(()) => {}
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(MEMBERSHIP_RETRY_INTERVAL).await;
        }
    }

    /// Adds a launched node as a learner.
    pub async fn join(&self, node: NodeId) -> Result<()> {
        let entry = self.node(node)?;
        let request = proto::JoinClusterRequest {
            node_id: node,
            peer_addr: entry.peer_addr.to_string(),
            api_addr: entry.api_addr.clone(),
        };
        self.change_membership(
            &format!("join of node {node}"),
            |members| members.iter().any(|member| member.node_id == node),
            |client| {
                let request = request.clone();
                async move {
                    client
                        .admin(Retry::NotSent, |mut admin| {
                            let request = request.clone();
                            async move { admin.join_cluster(request).await }
                        })
                        .await
                        .map(drop)
                }
            },
        )
        .await?;
        self.set_member(node, true);
        Ok(())
    }

    /// Makes a learner a voter.
    pub async fn promote(&self, node: NodeId) -> Result<()> {
        self.change_membership(
            &format!("promotion of node {node}"),
            |members| {
                members.iter().any(|member| {
                    member.node_id == node && member.role == proto::MemberRole::Voter as i32
                })
            },
            |client| async move {
                client
                    .admin(Retry::NotSent, |mut admin| async move {
                        admin
                            .promote_member(proto::PromoteMemberRequest { node_id: node })
                            .await
                    })
                    .await
                    .map(drop)
            },
        )
        .await
    }

    /// Takes a node out of the cluster; its container keeps running until the harness
    /// stops it.
    pub async fn remove_member(&self, node: NodeId) -> Result<()> {
        self.change_membership(
            &format!("removal of node {node}"),
            |members| members.iter().all(|member| member.node_id != node),
            |client| async move {
                client
                    .admin(Retry::NotSent, |mut admin| async move {
                        admin
                            .remove_member(proto::RemoveMemberRequest { node_id: node })
                            .await
                    })
                    .await
                    .map(drop)
            },
        )
        .await?;
        self.set_member(node, false);
        Ok(())
    }

    /// kill -9 of a node's process.
    pub async fn kill(&self, node: NodeId) -> Result<()> {
        docker::kill(&self.node(node)?.container).await?;
        self.set_state(node, NodeState::Killed);
        Ok(())
    }

    /// SIGTERM, and waits for the node to exit.
    pub async fn stop(&self, node: NodeId) -> Result<()> {
        docker::stop(&self.node(node)?.container).await?;
        self.set_state(node, NodeState::Stopped);
        Ok(())
    }

    /// Starts a killed or stopped node's container again, on its data; it may not answer
    /// yet ([`Cluster::wait_answering`]).
    pub async fn start_again(&self, node: NodeId) -> Result<()> {
        docker::start(&self.node(node)?.container).await?;
        self.set_state(node, NodeState::Running);
        Ok(())
    }

    pub async fn pause(&self, node: NodeId) -> Result<()> {
        docker::pause(&self.node(node)?.container).await?;
        self.set_state(node, NodeState::Paused);
        Ok(())
    }

    pub async fn unpause(&self, node: NodeId) -> Result<()> {
        docker::unpause(&self.node(node)?.container).await?;
        self.set_state(node, NodeState::Running);
        Ok(())
    }

    /// The host pid of a node's process, for entering its network namespace.
    pub async fn pid(&self, node: NodeId) -> Result<u32> {
        let pid = docker::container_pid(&self.node(node)?.container).await?;
        if pid == 0 {
            return Err(HarnessError::Setup(format!("node {node} is not running")));
        }
        Ok(pid)
    }

    /// Waits until every member that is up knows the same leader and has applied
    /// everything that leader has committed, and returns each one's status.
    pub async fn wait_converged(
        &self,
        timeout: Duration,
    ) -> Result<BTreeMap<NodeId, proto::ClusterStatusResponse>> {
        let deadline = Instant::now() + timeout;
        loop {
            let members = self.up_members();
            let mut statuses = BTreeMap::new();
            for node in &members {
                if let Ok(status) = self.status(*node).await {
                    statuses.insert(*node, status);
                }
            }
            let leaders: Vec<u64> = statuses.values().map(|s| s.leader_id).collect();
            let applied: Vec<u64> = statuses.values().map(|s| s.applied_index).collect();
            let leader = leaders.first().copied().unwrap_or(0);
            let leader_committed = statuses
                .get(&leader)
                .map(|status| status.committed_index)
                .unwrap_or(u64::MAX);
            if statuses.len() == members.len()
                && leader != 0
                && leaders.iter().all(|id| *id == leader)
                && applied.iter().all(|index| *index == leader_committed)
            {
                return Ok(statuses);
            }
            let last = format!(
                "{} of {} members answered; leaders {leaders:?}, applied {applied:?}, leader \
                 committed {leader_committed}",
                statuses.len(),
                members.len()
            );
            if Instant::now() > deadline {
                return Err(HarnessError::timeout(
                    "the members agreeing on the applied state",
                    timeout,
                    last,
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// A run id that names the network, the containers and the cluster: short, unique on this
/// machine, valid as a Docker name and as a cluster name.
/// A bootstrap secret in the form nodes take (`tl1.<16 hex>.<64 hex>`), random per run.
fn bootstrap_secret() -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    format!(
        "tl1.{}.{}",
        hex(&rand::random::<[u8; 8]>()),
        hex(&rand::random::<[u8; 32]>())
    )
}

fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seconds = docker::unix_seconds() % 1_000_000;
    format!("chaos-{}-{seconds}-{count}", std::process::id())
}

/// The workspace root: `cluster-tests/..`.
pub fn workspace_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_owned())
}
