//! Bad configuration and bad cluster operations: each says what went wrong and what to do,
//! fails with the right exit code or status, and leaves the data folder as it was.

// Tests may unwrap; the serial lock is held across awaits on purpose (one test at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Output},
    time::{Duration, SystemTime},
};

use support::*;
use trunkline_client::{proto, Retry};

/// `trunkline serve` with `args`, plaintext on loopback unless a config file is given.
fn run_serve(args: &[&str]) -> Output {
    let mut command = Command::new(trunkline_binary());
    command.arg("serve").args(args);
    if !args.contains(&"--config") {
        command.args(["--insecure", "--no-auth"]);
    }
    // The process must exit by itself; a hang would block the test forever otherwise.
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("trunkline serve {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file under `dir` with its size and modification time.
fn listing(dir: &Path) -> BTreeMap<String, (u64, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                stack.push(entry.path());
            } else {
                files.insert(
                    entry.path().display().to_string(),
                    (metadata.len(), metadata.modified().unwrap()),
                );
            }
        }
    }
    files
}

#[test]
fn a_malformed_config_names_the_key_and_line_and_creates_nothing() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let config = root.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = 1\ndata_dir = {:?}\n[raft]\nheartbeat_interval_ms = \"fast\"\n",
            data_dir.display().to_string()
        ),
    )
    .unwrap();
    let output = run_serve(&["--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("line 4"), "{message}");
    assert!(message.contains("heartbeat_interval_ms"), "{message}");
    assert!(message.contains("node.toml"), "{message}");
    assert!(
        !data_dir.exists(),
        "a bad config must not create the data folder"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let output = run_serve(&["--config", "/nonexistent/trunkline.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("/nonexistent/trunkline.toml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_port_in_use_is_reported_before_the_data_folder_is_touched() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let output = run_serve(&[
        "--node-id",
        "1",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--api-addr",
        &port,
        "--peer-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("can't listen on api_addr"), "{message}");
    assert!(message.contains(&port), "{message}");
    assert!(!data_dir.exists());
}

#[test]
fn a_probe_port_in_use_is_reported_before_the_data_folder_is_touched() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let output = run_serve(&[
        "--node-id",
        "1",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--api-addr",
        "127.0.0.1:0",
        "--peer-addr",
        "127.0.0.1:0",
        "--probe-addr",
        &port,
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("health.probe_addr"), "{message}");
    assert!(message.contains(&port), "{message}");
    assert!(!data_dir.exists());
}

#[test]
fn a_data_folder_of_another_node_or_cluster_is_refused_and_left_as_it_was() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(root.path(), 1, &[]);
    assert!(node.stop());
    let before = listing(&node.data_dir);
    assert!(!before.is_empty());
    let data_dir = node.data_dir.to_str().unwrap().to_owned();

    let output = run_serve(&[
        "--node-id",
        "2",
        "--cluster-name",
        "test",
        "--data-dir",
        &data_dir,
        "--api-addr",
        "127.0.0.1:0",
        "--peer-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains('1') && message.contains('2') && message.contains(&data_dir),
        "{message}"
    );

    let output = run_serve(&[
        "--node-id",
        "1",
        "--cluster-name",
        "other",
        "--data-dir",
        &data_dir,
        "--api-addr",
        "127.0.0.1:0",
        "--peer-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("other") && message.contains("test"),
        "{message}"
    );

    assert_eq!(
        listing(&node.data_dir),
        before,
        "the refused start changed the data folder"
    );
    // And the folder still works for its own node.
    node.restart();
    assert!(node.stop());
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_operations_refuse_what_would_break_the_cluster() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let cluster = TestCluster {
        nodes: vec![TestNode::start(root.path(), 1, FAST_RAFT)],
        root,
    };
    cluster.init().await;
    let client = cluster.get(1).client();

    // Initialising twice.
    let error = client
        .admin(Retry::NotSent, |mut admin| async move {
            admin.init_cluster(proto::InitClusterRequest {}).await
        })
        .await
        .unwrap_err();
    let status = error.status().unwrap();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{error}");
    assert!(status.message().contains("already initialised"), "{error}");

    // Joining a node the leader can't reach.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let request = proto::JoinClusterRequest {
        node_id: 9,
        peer_addr: closed.clone(),
        api_addr: closed.clone(),
    };
    let error = client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.join_cluster(request).await }
        })
        .await
        .unwrap_err();
    let status = error.status().unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{error}");
    assert!(
        status.message().contains("can't reach node 9") && status.message().contains(&closed),
        "{error}"
    );

    // A malformed join request names its field.
    let error = client
        .admin(Retry::NotSent, |mut admin| async move {
            admin
                .join_cluster(proto::JoinClusterRequest {
                    node_id: 9,
                    peer_addr: "nohost".into(),
                    api_addr: "127.0.0.1:1".into(),
                })
                .await
        })
        .await
        .unwrap_err();
    assert_eq!(error.status().unwrap().code(), tonic::Code::InvalidArgument);
    assert!(error.to_string().contains("peer_addr"), "{error}");

    // Removing the last voter; removing or promoting a node that is not a member.
    let error = client
        .admin(Retry::NotSent, |mut admin| async move {
            admin
                .remove_member(proto::RemoveMemberRequest { node_id: 1 })
                .await
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.status().unwrap().code(),
        tonic::Code::FailedPrecondition,
        "{error}"
    );
    assert!(error.to_string().contains("last voter"), "{error}");
    let error = client
        .admin(Retry::NotSent, |mut admin| async move {
            admin
                .promote_member(proto::PromoteMemberRequest { node_id: 5 })
                .await
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.status().unwrap().code(),
        tonic::Code::NotFound,
        "{error}"
    );

    // A bad key names the field; nothing was written.
    let error = set(&client, "has space", "x").await.unwrap_err();
    assert_eq!(error.status().unwrap().code(), tonic::Code::InvalidArgument);
    assert!(error.to_string().contains("key"), "{error}");

    // After all that the cluster still works.
    let written = set(&client, "still-works", "yes").await.unwrap();
    assert_eq!(
        value_at(&client, "still-works", written.applied_index)
            .await
            .as_deref(),
        Some("yes")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_write_survives_kill_9() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let mut cluster = TestCluster {
        nodes: vec![TestNode::start(root.path(), 1, FAST_RAFT)],
        root,
    };
    cluster.init().await;
    let client = cluster.get(1).client();
    let mut last = 0;
    for n in 0..200 {
        last = set(&client, &format!("durable/{n}"), &n.to_string())
            .await
            .unwrap()
            .applied_index;
    }
    // No clean shutdown: whatever was acknowledged must already be on disk.
    cluster.node(1).kill();
    cluster.node(1).restart();
    let client = cluster.get(1).client();
    wait_for_leader(&client, Duration::from_secs(10)).await;
    for n in 0..200 {
        assert_eq!(
            value_at(&client, &format!("durable/{n}"), last).await,
            Some(n.to_string())
        );
    }
}

/// Regression: SIGTERM that arrived before the handler was installed killed the node with the
/// default action (a non-zero exit) instead of a clean shutdown.
#[test]
fn sigterm_right_after_start_is_a_clean_shutdown() {
    let root = tempfile::tempdir().unwrap();
    let mut node = TestNode::start(root.path(), 1, &[]);
    for _ in 0..3 {
        assert!(node.stop(), "unclean exit:\n{}", node.log());
        node.restart();
    }
    assert!(node.stop());
}
