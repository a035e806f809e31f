//! Real `trunkline` processes on 127.0.0.1 for the integration tests: start, kill -9, stop
//! with SIGTERM, restart on the same data and ports, and a failover client over them.
//!
//! Nodes bind port 0 on first start and print the addresses they got; restarts reuse those
//! ports, because the cluster's membership records them.
//!
//! Nodes speak TLS, with certificates from a CA made for the test folder (`pki/`), unless
//! their extra arguments say `--insecure`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use trunkline_client::{proto, Client, Retry};

pub mod routing;

/// Raft timings for tests: fast elections so failover tests finish quickly.
pub const FAST_RAFT: &[&str] = &[
    "--heartbeat-interval-ms",
    "50",
    "--election-timeout-min-ms",
    "300",
    "--election-timeout-max-ms",
    "600",
];

/// Plaintext on loopback, for tests that must reach below TLS.
pub const INSECURE: &[&str] = &["--insecure"];

pub fn trunkline_binary() -> &'static str {
    env!("CARGO_BIN_EXE_trunkline")
}

/// Runs `trunkline` with `args` to its end: its exit code and everything it printed.
pub fn run_trunkline<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String) {
    let output = Command::new(trunkline_binary())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

pub struct TestNode {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub api_addr: String,
    pub peer_addr: String,
    /// The HTTP JSON listener's address, when started with `--http-addr`.
    pub http_addr: Option<String>,
    /// The Prometheus listener's address, when started with `--metrics-addr`.
    pub metrics_addr: Option<String>,
    /// The folder of the CA and this node's certificate; `None`: `--insecure`.
    pub pki: Option<PathBuf>,
    extra: Vec<String>,
    child: Option<Child>,
}

/// The cluster name every test node runs with.
pub const CLUSTER_NAME: &str = "test";

/// Makes `root/pki` with a CA (once) and node `node_id`'s certificate for 127.0.0.1 (once).
pub fn ensure_pki(root: &Path, node_id: u64) -> PathBuf {
    use trunkline_tls::ca;
    let pki = root.join("pki");
    if !pki.join("ca.pem").exists() {
        ca::new_ca(CLUSTER_NAME)
            .unwrap()
            .write(&pki, "ca", false)
            .unwrap();
    }
    let name = format!("node-{node_id}");
    if !pki.join(format!("{name}.pem")).exists() {
        let authority = ca::Issued::read(&pki, "ca").unwrap();
        ca::issue(
            &authority,
            CLUSTER_NAME,
            &ca::Subject::Node {
                id: node_id,
                hosts: vec!["127.0.0.1".into()],
            },
            ca::DEFAULT_VALIDITY,
        )
        .unwrap()
        .write(&pki, &name, false)
        .unwrap();
    }
    pki
}

/// What a client of the test nodes dials with: trusts the folder's CA.
pub fn client_tls(pki: &Path) -> std::sync::Arc<trunkline_tls::rustls::ClientConfig> {
    std::sync::Arc::new(trunkline_tls::client_config_from_files(&pki.join("ca.pem"), None).unwrap())
}

/// A client of `endpoints`, over TLS when `pki` is given.
pub fn client_of(endpoints: Vec<String>, pki: Option<&Path>) -> Client {
    let client = Client::new(endpoints)
        .unwrap()
        .with_request_timeout(Duration::from_secs(10));
    match pki {
        Some(pki) => client.with_tls(client_tls(pki)),
        None => client,
    }
}

/// Something to speak HTTP/2 over by hand.
pub trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

/// A byte stream to `node`'s client listener, under TLS unless it runs `--insecure`: for
/// tests that speak HTTP/2 by hand.
pub async fn raw_stream(node: &TestNode) -> Box<dyn Duplex> {
    let tcp = tokio::net::TcpStream::connect(&node.api_addr)
        .await
        .unwrap();
    match &node.pki {
        None => Box::new(tcp),
        Some(pki) => {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let tls = tokio_rustls::TlsConnector::from(client_tls(pki))
                .connect(name, tcp)
                .await
                .unwrap();
            Box::new(tls)
        }
    }
}

/// A raw tonic channel to `address` (for services `Client` has no method for), over TLS
/// when `pki` is given.
pub async fn channel_to(address: &str, pki: Option<&Path>) -> tonic::transport::Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap();
    match pki {
        None => endpoint.connect().await.unwrap(),
        Some(pki) => {
            let connector = trunkline_tls::connect::Connector::fixed(
                client_tls(pki),
                "127.0.0.1",
                Duration::from_secs(2),
                Duration::from_secs(2),
            )
            .unwrap();
            endpoint.connect_with_connector(connector).await.unwrap()
        }
    }
}

impl TestNode {
    /// Starts node `node_id` with its data under `root`, on fresh ports.
    pub fn start(root: &Path, node_id: u64, extra: &[&str]) -> TestNode {
        let pki = (!extra.contains(&"--insecure")).then(|| ensure_pki(root, node_id));
        let mut node = TestNode {
            pki,
            node_id,
            data_dir: root.join(format!("node-{node_id}")),
            log_path: root.join(format!("node-{node_id}.log")),
            api_addr: "127.0.0.1:0".into(),
            peer_addr: "127.0.0.1:0".into(),
            http_addr: None,
            metrics_addr: None,
            extra: extra.iter().map(|arg| arg.to_string()).collect(),
            child: None,
        };
        node.spawn();
        node
    }

    /// `trunkline serve` for this node: its id, data folder, ports and extra arguments.
    fn serve_command(&self, log_level: &str) -> Command {
        let mut command = Command::new(trunkline_binary());
        command
            .arg("serve")
            .args(["--node-id", &self.node_id.to_string()])
            .args(["--cluster-name", CLUSTER_NAME])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--api-addr", &self.api_addr])
            .args(["--peer-addr", &self.peer_addr])
            .args(["--log-level", log_level])
            .args(&self.extra);
        // Tokens are required by default; tests of other things run without them
        // (`auth.rs` and `tls.rs` ask for them).
        if !self.extra.iter().any(|arg| arg == "--require-auth") {
            command.arg("--no-auth");
        }
        if let Some(pki) = &self.pki {
            let node = format!("node-{}", self.node_id);
            command
                .arg("--tls-cert-file")
                .arg(pki.join(format!("{node}.pem")))
                .arg("--tls-key-file")
                .arg(pki.join(format!("{node}.key")))
                .arg("--tls-ca-file")
                .arg(pki.join("ca.pem"));
        }
        command
    }

    fn spawn(&mut self) {
        assert!(
            self.child.is_none(),
            "node {} is already running",
            self.node_id
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut child = self
            .serve_command("info,openraft=warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Keep draining after the addresses are read, so the node never writes
                // into a closed pipe.
                let _ = sender.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut api, mut peer) = (None, None);
        self.http_addr = None;
        self.metrics_addr = None;
        let wants_http = self.extra.iter().any(|arg| arg == "--http-addr");
        let wants_metrics = self.extra.iter().any(|arg| arg == "--metrics-addr");
        while api.is_none()
            || peer.is_none()
            || (wants_http && self.http_addr.is_none())
            || (wants_metrics && self.metrics_addr.is_none())
        {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(remaining) {
                Ok(line) => {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    match words.as_slice() {
                        ["api", address, ..] => api = Some(address.to_string()),
                        ["peer", address, ..] => peer = Some(address.to_string()),
                        ["http", address, ..] => self.http_addr = Some(address.to_string()),
                        ["metrics", address, ..] => self.metrics_addr = Some(address.to_string()),
                        _ => {}
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
                    panic!("node {} did not start:\n{log}", self.node_id);
                }
            }
        }
        self.api_addr = api.unwrap();
        self.peer_addr = peer.unwrap();
        self.child = Some(child);
    }

    /// kill -9: no clean shutdown, nothing flushed that was not already.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the process to exit; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Starts the node again with other extra arguments (same data folder and ports).
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|arg| arg.to_string()).collect();
        self.spawn();
    }

    /// Starts the node on its data folder and ports expecting it to refuse to start: waits
    /// for the process to exit and returns its status with what it wrote to stderr.
    pub fn start_expecting_exit(&mut self) -> (std::process::ExitStatus, String) {
        assert!(self.child.is_none(), "node {} is running", self.node_id);
        let output = self
            .serve_command("warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// [`TestNode::start_expecting_exit`] with other extra arguments, kept for later starts.
    pub fn start_expecting_exit_with(
        &mut self,
        extra: &[&str],
    ) -> (std::process::ExitStatus, String) {
        self.extra = extra.iter().map(|arg| arg.to_string()).collect();
        self.start_expecting_exit()
    }

    /// Starts the node on its data folder and ports, lets it run at most `timeout`, then
    /// kills it if it is still running; how it exited if it exited by itself.
    pub fn run_briefly(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        assert!(self.child.is_none(), "node {} is running", self.node_id);
        let mut child = self
            .serve_command("warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Waits up to `timeout` for the running process to exit by itself; its status, or
    /// `None` if it is still running (then it is left running).
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id while the node runs (for /proc and prlimit).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn client(&self) -> Client {
        client_of(vec![self.api_addr.clone()], self.pki.as_deref())
    }

    /// A raw channel to the client listener.
    pub async fn channel(&self) -> tonic::transport::Channel {
        channel_to(&self.api_addr, self.pki.as_deref()).await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Several nodes under one temporary folder.
pub struct TestCluster {
    pub root: tempfile::TempDir,
    pub nodes: Vec<TestNode>,
}

impl TestCluster {
    /// Starts `count` nodes, initialises node 1 and makes the others voters.
    pub async fn start(count: u64, extra: &[&str]) -> TestCluster {
        let root = tempfile::tempdir().unwrap();
        let nodes: Vec<TestNode> = (1..=count)
            .map(|node_id| TestNode::start(root.path(), node_id, extra))
            .collect();
        let cluster = TestCluster { root, nodes };
        cluster.init().await;
        for node_id in 2..=count {
            cluster.join(node_id).await;
            cluster.promote(node_id).await;
        }
        cluster
    }

    pub fn node(&mut self, node_id: u64) -> &mut TestNode {
        self.nodes
            .iter_mut()
            .find(|node| node.node_id == node_id)
            .unwrap()
    }

    pub fn get(&self, node_id: u64) -> &TestNode {
        self.nodes
            .iter()
            .find(|node| node.node_id == node_id)
            .unwrap()
    }

    pub async fn init(&self) {
        self.get(1)
            .client()
            .admin(Retry::NotSent, |mut admin| async move {
                admin.init_cluster(proto::InitClusterRequest {}).await
            })
            .await
            .unwrap();
        wait_for_leader(&self.get(1).client(), Duration::from_secs(10)).await;
    }

    pub async fn join(&self, node_id: u64) {
        let node = self.get(node_id);
        let request = proto::JoinClusterRequest {
            node_id,
            peer_addr: node.peer_addr.clone(),
            api_addr: node.api_addr.clone(),
        };
        self.get(1)
            .client()
            .admin(Retry::NotSent, |mut admin| {
                let request = request.clone();
                async move { admin.join_cluster(request).await }
            })
            .await
            .unwrap_or_else(|error| panic!("can't join node {node_id}: {error}\n{}", self.logs()));
    }

    /// Promotes a learner once it has replicated something.
    pub async fn promote(&self, node_id: u64) {
        let client = self.get(1).client();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let result = client
                .admin(Retry::NotSent, |mut admin| async move {
                    admin
                        .promote_member(proto::PromoteMemberRequest { node_id })
                        .await
                })
                .await;
            match result {
                Ok(_) => return,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("can't promote node {node_id}: {error}"),
            }
        }
    }

    /// A client with every running node as an endpoint.
    pub fn client(&self) -> Client {
        client_of(
            self.nodes
                .iter()
                .filter(|node| node.is_running())
                .map(|node| node.api_addr.clone())
                .collect(),
            self.nodes.first().and_then(|node| node.pki.as_deref()),
        )
    }

    pub async fn leader(&self) -> u64 {
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            if let Ok(status) = status(&node.client()).await {
                if status.leader_id != 0 {
                    return status.leader_id;
                }
            }
        }
        panic!("no node knows a leader");
    }

    /// Every node's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("==== node {} ====\n{}", node.node_id, node.log()))
            .collect()
    }
}

pub async fn status(
    client: &Client,
) -> Result<proto::ClusterStatusResponse, trunkline_client::ClientError> {
    client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.cluster_status(proto::ClusterStatusRequest {}).await
        })
        .await
}

/// Waits until the node `client` asks has a snapshot of at least `index`.
pub async fn wait_for_snapshot(client: &Client, index: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = status(client).await.unwrap();
        if status.snapshot_index >= index {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot of index {index} within {timeout:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Initialises a cluster through `client` (one node's); the answer names the first admin
/// token when the node requires authentication.
pub async fn initialise(client: &Client) -> proto::InitClusterResponse {
    client
        .admin(Retry::NotSent, |mut admin| async move {
            admin
                .init_cluster(proto::InitClusterRequest::default())
                .await
        })
        .await
        .unwrap()
}

/// One node started in `root` with `extra` flags, initialised as a cluster of one, leading.
pub async fn started(root: &Path, extra: &[&str]) -> (TestNode, Client) {
    let node = TestNode::start(root, 1, extra);
    let client = node.client();
    initialise(&client).await;
    wait_for_leader(&client, Duration::from_secs(10)).await;
    (node, client)
}

pub async fn wait_for_leader(client: &Client, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(status) = status(client).await {
            if status.leader_id != 0 {
                return status.leader_id;
            }
        }
        assert!(Instant::now() < deadline, "no leader within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn set(
    client: &Client,
    key: &str,
    value: &str,
) -> Result<proto::SettingWriteResponse, trunkline_client::ClientError> {
    let request = proto::SetSettingRequest {
        key: key.into(),
        value: value.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.set_setting(request).await }
        })
        .await
}

pub async fn get(
    client: &Client,
    key: &str,
    consistency: proto::ReadConsistency,
) -> Result<proto::GetSettingResponse, trunkline_client::ClientError> {
    let request = proto::GetSettingRequest {
        key: key.into(),
        consistency: Some(consistency),
    };
    client
        .admin(Retry::Idempotent, |mut admin| {
            let request = request.clone();
            async move { admin.get_setting(request).await }
        })
        .await
}

/// The value of `key` on the node behind `client` once it has applied `min_applied_index`.
pub async fn value_at(client: &Client, key: &str, min_applied_index: u64) -> Option<String> {
    get(
        client,
        key,
        proto::ReadConsistency {
            min_applied_index,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .setting
    .map(|setting| setting.value)
}

/// Multi-node tests take this first: several clusters at once on a 2-core machine starve
/// each other's heartbeats into spurious elections.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Joins `node` through the cluster `client` reaches and promotes it to voter once it has
/// replicated; `leader_log` is shown if it never does.
pub async fn join_and_promote(client: &Client, node: &TestNode, leader_log: &dyn Fn() -> String) {
    let request = proto::JoinClusterRequest {
        node_id: node.node_id,
        peer_addr: node.peer_addr.clone(),
        api_addr: node.api_addr.clone(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.join_cluster(request).await }
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let node_id = node.node_id;
        let promoted = client
            .admin(Retry::NotSent, |mut admin| async move {
                admin
                    .promote_member(proto::PromoteMemberRequest { node_id })
                    .await
            })
            .await;
        match promoted {
            Ok(_) => return,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "can't promote {node_id}: {error}\n==== its log ====\n{}\n==== the leader's ====\n{}",
                    node.log(),
                    leader_log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Every call record on the node behind `client`, and from when its archive says it is
/// whole (`complete_since_ms` of the listing's last chunk).
#[allow(clippy::unwrap_used, dead_code)]
pub async fn call_records(client: &Client) -> (Vec<proto::CallRecord>, u64) {
    let mut stream = client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin.list_cdrs(proto::ListCdrsRequest::default()).await
        })
        .await
        .unwrap();
    let mut records = Vec::new();
    let mut complete_since_ms = u64::MAX;
    while let Some(chunk) = stream.message().await.unwrap() {
        complete_since_ms = chunk.complete_since_ms;
        records.extend(chunk.records);
    }
    (records, complete_since_ms)
}
