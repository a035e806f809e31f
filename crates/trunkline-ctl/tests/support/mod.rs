//! What the trunkctl tests share: a real node started in this process, the real trunkctl
//! binary run against it, and a check of its exit code and output.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
    time::Duration,
};

use trunkline_node::{
    config::{Config, RaftConfig},
    server::NodeServer,
};

/// The CA and node certificate every node of these tests serves (cluster `cli`, node 1, for
/// 127.0.0.1), made once under the target folder and renewed when half a year old.
pub fn pki() -> &'static Path {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        use trunkline_tls::ca;
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = target.join("trunkctl-test-pki");
        let fresh = std::fs::metadata(dir.join("node-1.pem"))
            .and_then(|metadata| metadata.modified())
            .is_ok_and(|modified| {
                modified.elapsed().unwrap_or_default() < Duration::from_secs(180 * 24 * 3600)
            });
        if fresh {
            return dir;
        }
        // Made aside and renamed into place, so a run never sees half of it.
        let staging = tempfile::tempdir_in(target).unwrap();
        let authority = ca::new_ca("cli").unwrap();
        authority.write(staging.path(), "ca", false).unwrap();
        let subject = ca::Subject::Node {
            id: 1,
            hosts: vec!["127.0.0.1".into()],
        };
        ca::issue(&authority, "cli", &subject, ca::DEFAULT_VALIDITY)
            .unwrap()
            .write(staging.path(), "node-1", false)
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(staging.keep(), &dir).unwrap();
        dir
    })
}

/// A single initialised node serving on a background runtime until the test ends.
pub struct Node {
    pub api_addr: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _data: tempfile::TempDir,
}

pub fn start_node() -> Node {
    start_node_with(false).0
}

/// A node that requires a token of every caller when `require_auth`, and its first admin
/// token.
pub fn start_node_with(require_auth: bool) -> (Node, String) {
    let files = trunkline_tls::TlsFiles {
        cert: pki().join("node-1.pem"),
        key: pki().join("node-1.key"),
        ca: pki().join("ca.pem"),
    };
    start_node_on(require_auth, files)
}

/// A node of cluster `cli` serving the certificate in `files`, and its first admin token.
pub fn start_node_on(require_auth: bool, files: trunkline_tls::TlsFiles) -> (Node, String) {
    start_node_sealed(require_auth, files, None)
}

/// [`start_node_on`], sealing its data folder with `keys` (`ID HEX` lines) when given.
pub fn start_node_sealed(
    require_auth: bool,
    files: trunkline_tls::TlsFiles,
    keys: Option<&str>,
) -> (Node, String) {
    let encryption_keys = keys.map(|text| {
        trunkline_node::config::EncryptionKeys(std::sync::Arc::new(
            trunkline_store::seal::KeyRing::parse(text).unwrap(),
        ))
    });
    let ca_file = files.ca.clone();
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        node_id: 1,
        cluster_name: "cli".into(),
        data_dir: data.path().join("data"),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        peer_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: None,
        metrics_addr: None,
        leg_timers: Default::default(),
        advertise_api_addr: None,
        advertise_peer_addr: None,
        raft: RaftConfig::default(),
        log_level: "warn".into(),
        log_format: Default::default(),
        otlp_endpoint: None,
        probe_addr: "127.0.0.1:0".parse().unwrap(),
        peer_liveness_timeout_ms: 1_000,
        min_free_bytes: trunkline_node::config::DEFAULT_MIN_FREE_BYTES,
        store_cache_bytes: trunkline_node::config::DEFAULT_STORE_CACHE_BYTES,
        limits: trunkline_node::config::LimitsConfig::default(),
        service_limits: Default::default(),
        require_auth,
        encryption_keys,
        transport: trunkline_node::config::Transport::Tls(files),
        webhook_ca_file: None,
    };
    let (address_sender, address_receiver) = std::sync::mpsc::channel();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let server = NodeServer::start(&config).await.unwrap();
            let admin_token = server.cluster().initialize().await.unwrap();
            address_sender
                .send((server.api_addr.to_string(), admin_token))
                .unwrap();
            server
                .serve(async {
                    let _ = stop.await;
                })
                .await
                .unwrap();
        });
    });
    let (api_addr, admin_token) = address_receiver.recv().unwrap();
    let node = Node {
        api_addr,
        _shutdown: shutdown,
        _data: data,
    };
    // Wait until it leads, so the first write doesn't race the election.
    let mut last = String::new();
    for _ in 0..100 {
        let output = trunkctl_command()
            .args([
                "--endpoints",
                &node.api_addr,
                "-o",
                "json",
                "cluster",
                "status",
            ])
            .env("TRUNKLINE_TOKEN", &admin_token)
            .env("TRUNKLINE_CA_FILE", &ca_file)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&output.stdout).contains("\"state\": \"leader\"") {
            return (node, admin_token);
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the node did not become leader: {last}");
}

/// A client of the node at `api_addr`, over TLS trusting the test CA.
pub fn client(api_addr: &str) -> trunkline_client::Client {
    let tls = trunkline_tls::client_config_from_files(&pki().join("ca.pem"), None).unwrap();
    trunkline_client::Client::new([api_addr.to_owned()])
        .unwrap()
        .with_tls(std::sync::Arc::new(tls))
}

/// trunkctl as the tests run it: trusting the test CA (TRUNKLINE_CA_FILE).
pub fn trunkctl_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trunkctl"));
    command.env("TRUNKLINE_CA_FILE", pki().join("ca.pem"));
    command
}

pub fn trunkctl_with(endpoints: &str, args: &[&str]) -> Output {
    trunkctl_command()
        .args(["--endpoints", endpoints, "--timeout-ms", "10000"])
        .args(args)
        .env_remove("TRUNKLINE_TOKEN")
        .env_remove("TRUNKLINE_TOKEN_FILE")
        .output()
        .unwrap()
}

pub fn trunkctl(node: &Node, args: &[&str]) -> Output {
    trunkctl_with(&node.api_addr, args)
}

/// trunkctl with `token` in TRUNKLINE_TOKEN.
pub fn trunkctl_as(node: &Node, token: &str, args: &[&str]) -> Output {
    trunkctl_command()
        .args(["--endpoints", &node.api_addr, "--timeout-ms", "10000"])
        .args(args)
        .env("TRUNKLINE_TOKEN", token)
        .output()
        .unwrap()
}

/// Runs trunkctl and checks its exit code and that stdout/stderr contain the needles.
pub fn check(
    output: Output,
    code: i32,
    stdout_needles: &[&str],
    stderr_needles: &[&str],
) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    for needle in stdout_needles {
        assert!(
            stdout.contains(needle),
            "{needle:?} not in stdout: {stdout}"
        );
    }
    for needle in stderr_needles {
        assert!(
            stderr.contains(needle),
            "{needle:?} not in stderr: {stderr}"
        );
    }
    stdout
}

pub fn closed_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// trunkctl's JSON output, parsed.
pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// The value of a `FIELD VALUE` row of a details table.
pub fn value_of(table: &str, field: &str) -> String {
    table
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?;
            rest.starts_with("  ").then(|| rest.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {field:?} row in:\n{table}"))
}
