//! A `trunkline dev` node in a child process, for the measuring binaries (`attacks`,
//! `limits_load`): started on free local ports, its log kept, stopped with SIGTERM.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};

/// How long the node may take to print its banner (it seeds the demo on its first start).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// From SIGTERM to SIGKILL when stopping the node (it stops within 5 s by design).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `trunkline dev` child process and where it listens.
pub struct Node {
    pub child: Child,
    pub pid: u32,
    pub api_addr: String,
    pub peer_addr: String,
    /// The node's stderr (its log), appended to across restarts.
    log_path: PathBuf,
    /// Where this process's part of the log starts.
    log_start: usize,
}

impl Node {
    /// Starts `trunkline dev` on `data_dir` (seeding the demo on the first start), under
    /// `prlimit --nofile=N:N` when `fd_limit` is set, and waits for its banner.
    pub fn start(
        trunkline: &Path,
        data_dir: &Path,
        log_path: &Path,
        fd_limit: Option<u64>,
    ) -> anyhow::Result<Node> {
        let listen = free_port_pair()?;
        let (log, log_start) = open_log(log_path)?;
        let mut command = match fd_limit {
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(trunkline);
                command
            }
            None => Command::new(trunkline),
        };
        // The attacks measure what a caller can make the node hold, not authentication.
        command
            .arg("dev")
            .arg("--no-auth")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(&listen)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        Node::launch(command, trunkline, log_path, log_start)
    }

    /// Starts `trunkline serve` as node `node_id` of the dev cluster (insecure, no tokens, on
    /// loopback ports of its choosing), for [`Node::join`] to add to a dev node's cluster.
    pub fn start_member(
        trunkline: &Path,
        data_dir: &Path,
        log_path: &Path,
        node_id: u64,
    ) -> anyhow::Result<Node> {
        let (log, log_start) = open_log(log_path)?;
        let mut command = Command::new(trunkline);
        command
            .arg("serve")
            .args(["--node-id", &node_id.to_string()])
            .args(["--cluster-name", "dev"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0"])
            .args(["--insecure", "--no-auth", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        Node::launch(command, trunkline, log_path, log_start)
    }

    /// Runs `command` and waits for the addresses it prints.
    fn launch(
        mut command: Command,
        trunkline: &Path,
        log_path: &Path,
        log_start: usize,
    ) -> anyhow::Result<Node> {
        let mut child = command
            .spawn()
            .with_context(|| format!("can't start {}", trunkline.display()))?;
        // prlimit execs the command, so the child's pid is the node's.
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("the node's stdout was not captured"))?;
        // A thread reads the banner and then drains stdout until the node exits, so the
        // node never blocks on a full pipe.
        let (lines, banner) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Once the banner is read nobody listens: keep draining.
                let _ = lines.send(line);
            }
        });
        let mut node = Node {
            child,
            pid,
            api_addr: String::new(),
            peer_addr: String::new(),
            log_path: log_path.to_owned(),
            log_start,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while node.api_addr.is_empty() || node.peer_addr.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match banner.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => line,
                Err(_) => bail!(
                    "no banner from the node within {START_TIMEOUT:?} (running: {}); its log:\n{}",
                    node.is_running(),
                    node.log_tail()
                ),
            };
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("api"), Some(address)) => node.api_addr = address.to_owned(),
                (Some("peer"), Some(address)) => node.peer_addr = address.to_owned(),
                _ => {}
            }
        }
        Ok(node)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL if it has not stopped within [`STOP_TIMEOUT`].
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("the node did not stop within {STOP_TIMEOUT:?}: killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What this process wrote to the log.
    pub fn log(&self) -> String {
        let log = std::fs::read(&self.log_path).unwrap_or_default();
        String::from_utf8_lossy(log.get(self.log_start..).unwrap_or_default()).into_owned()
    }

    /// The last lines of the node's log, for an error message.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `127.0.0.1:P` where P, P + 1 and P + 2 (the dev node's peer and HTTP listeners) were all
/// free just now.
pub fn free_port_pair() -> anyhow::Result<String> {
    // `trunkline dev` takes the port, the next (peer) and the one after (HTTP).
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").context("can't bind a local port")?;
        let port = first.local_addr()?.port();
        let (Some(peer), Some(http)) = (port.checked_add(1), port.checked_add(2)) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", peer)).is_ok()
            && TcpListener::bind(("127.0.0.1", http)).is_ok()
        {
            return Ok(format!("127.0.0.1:{port}"));
        }
    }
    bail!("found no three free consecutive local ports")
}

/// The log file a node's stderr is appended to, and where this process's part starts.
fn open_log(log_path: &Path) -> anyhow::Result<(File, usize)> {
    let start = std::fs::metadata(log_path).map_or(0, |metadata| metadata.len() as usize);
    let log = File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("can't open {}", log_path.display()))?;
    Ok((log, start))
}

/// A `trunkline dev` node (seeding the demo) and `members - 1` more joined to it as voters:
/// a cluster of real processes on loopback, node 1 first. Folders and logs go under `root`.
pub async fn start_cluster(
    trunkline: &Path,
    root: &Path,
    members: u64,
) -> anyhow::Result<Vec<Node>> {
    use trunkline_api::v1::{self as proto, admin_service_client::AdminServiceClient};

    let first = Node::start(
        trunkline,
        &root.join("node-1"),
        &root.join("node-1.log"),
        None,
    )?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", first.api_addr))?
        .connect()
        .await
        .context("can't connect to node 1")?;
    let mut admin = AdminServiceClient::new(channel);
    let mut nodes = vec![first];
    for node_id in 2..=members {
        let node = Node::start_member(
            trunkline,
            &root.join(format!("node-{node_id}")),
            &root.join(format!("node-{node_id}.log")),
            node_id,
        )?;
        admin
            .join_cluster(proto::JoinClusterRequest {
                node_id,
                peer_addr: node.peer_addr.clone(),
                api_addr: node.api_addr.clone(),
            })
            .await
            .with_context(|| format!("can't join node {node_id}"))?;
        // A learner is promoted once it has caught up.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match admin
                .promote_member(proto::PromoteMemberRequest { node_id })
                .await
            {
                Ok(_) => break,
                Err(status) if Instant::now() < deadline => {
                    let _ = status;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => bail!("can't promote node {node_id}: {status}"),
            }
        }
        nodes.push(node);
    }
    Ok(nodes)
}
