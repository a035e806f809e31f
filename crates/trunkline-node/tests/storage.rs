//! A node never lies about its data and never lingers broken: real `trunkline` processes
//! with a damaged data folder, a disk below its reserve, and a disk that runs out.
//!
//! - A voter whose database lost its recent writes refuses to start (exit code 3, naming the
//!   folder and what was expected); `trunkline recover` moves the folder aside, and the node
//!   comes back empty with its last vote and catches up from the leader.
//! - Below `storage.min_free_bytes`, client writes are refused with RESOURCE_EXHAUSTED and
//!   reads go on.
//! - On a disk that really runs out, the Raft core stops: the node reports NOT_SERVING, the
//!   write is answered as "may or may not have been applied" (never INTERNAL), the process
//!   exits non-zero by itself, and after space is freed it starts again with every
//!   acknowledged write.
//!
//! The disk tests mount a small tmpfs, so they need root (CI runs as root); without it they
//! fail saying so, never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{get, set, status, value_at, TestCluster, TestNode, FAST_RAFT};
use tonic::Code;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};
use trunkline_client::{proto, ClientError, Retry};

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

fn code_of(error: &ClientError) -> Option<Code> {
    match error {
        ClientError::Status { status, .. } => Some(status.code()),
        _ => None,
    }
}

async fn write_index(cluster: &TestCluster, key: &str, value: &str) -> u64 {
    set(&cluster.client(), key, value)
        .await
        .unwrap()
        .applied_index
}

#[tokio::test(flavor = "multi_thread")]
async fn a_voter_that_lost_recent_writes_refuses_to_start_and_recover_brings_it_back() {
    let _serial = support::serial();
    let mut cluster = TestCluster::start(3, FAST_RAFT).await;
    for n in 0..20 {
        write_index(&cluster, &format!("early-{n}"), "v").await;
    }
    // Node 3's database as it was before the writes below: what sled serves when it loses
    // its recent writes.
    assert!(cluster.node(3).stop(), "node 3 did not stop cleanly");
    let data_dir = cluster.get(3).data_dir.clone();
    let older_db = cluster.root.path().join("node-3-older-db");
    copy_tree(&data_dir.join("db"), &older_db);
    cluster.node(3).restart();
    let mut last_index = 0;
    for n in 0..20 {
        last_index = write_index(&cluster, &format!("late-{n}"), "acknowledged").await;
    }
    let node3 = cluster.get(3).client();
    assert_eq!(
        value_at(&node3, "late-19", last_index).await.as_deref(),
        Some("acknowledged")
    );
    assert!(cluster.node(3).stop(), "node 3 did not stop cleanly");
    std::fs::remove_dir_all(data_dir.join("db")).unwrap();
    copy_tree(&older_db, &data_dir.join("db"));

    let (exit, stderr) = cluster.node(3).start_expecting_exit();
    assert_eq!(exit.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&data_dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("acknowledged"), "{stderr}");
    assert!(stderr.contains("trunkline recover"), "{stderr}");

    // The cluster goes on without it meanwhile.
    last_index = write_index(&cluster, "while-node-3-is-down", "yes").await;

    let recovered = Command::new(support::trunkline_binary())
        .args(["recover", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&recovered.stdout);
    assert!(
        recovered.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&recovered.stderr)
    );
    assert!(said.contains("kept its last vote"), "{said}");
    let damaged_copies: Vec<PathBuf> = std::fs::read_dir(cluster.root.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains("node-3.damaged-"))
        .collect();
    assert_eq!(damaged_copies.len(), 1, "{damaged_copies:?}");

    cluster.node(3).restart();
    let node3 = cluster.get(3).client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let caught_up = get(
            &node3,
            "while-node-3-is-down",
            proto::ReadConsistency {
                min_applied_index: last_index,
                ..Default::default()
            },
        )
        .await;
        if let Ok(answer) = caught_up {
            assert_eq!(answer.setting.unwrap().value, "yes");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 did not catch up after recover:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in 0..20 {
        assert_eq!(
            value_at(&node3, &format!("late-{n}"), last_index)
                .await
                .as_deref(),
            Some("acknowledged")
        );
    }
    // And it is a voter again: with node 1 down, nodes 2 and 3 still commit.
    cluster.node(1).kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while set(&cluster.client(), "after-recover", "quorum")
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "no quorum without node 1:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A tmpfs of `mebibytes` at `path`, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, mebibytes: u64) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mebibytes}m"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "this test mounts a small tmpfs to fill a disk and needs root: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk {
            path: path.to_owned(),
        }
    }

    fn resize(&self, mebibytes: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={mebibytes}m")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

async fn init_single(node: &TestNode) {
    node.client()
        .admin(Retry::NotSent, |mut admin| async move {
            admin.init_cluster(proto::InitClusterRequest {}).await
        })
        .await
        .unwrap();
    support::wait_for_leader(&node.client(), Duration::from_secs(10)).await;
}

/// A setting value of 60 KiB, different for each `n`.
fn filler(n: u32) -> String {
    format!("{n:08}").repeat(60 * 1024 / 8)
}

#[tokio::test(flavor = "multi_thread")]
async fn below_the_reserve_writes_are_refused_and_reads_go_on() {
    let _serial = support::serial();
    let root = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&root.path().join("disk"), 48);
    let mut args = FAST_RAFT.to_vec();
    args.extend(["--min-free-bytes", "25165824"]); // 24 MiB
    let node = TestNode::start(&disk.path, 1, &args);
    init_single(&node).await;
    let client = node.client();

    let mut acknowledged = Vec::new();
    let refusal = loop {
        let key = format!("fill-{}", acknowledged.len());
        match set(&client, &key, &filler(acknowledged.len() as u32)).await {
            Ok(_) => acknowledged.push(key),
            Err(error) => break error,
        }
        assert!(
            acknowledged.len() < 2_000,
            "the reserve never refused a write"
        );
    };
    assert_eq!(
        code_of(&refusal),
        Some(Code::ResourceExhausted),
        "{refusal}"
    );
    assert!(
        refusal.to_string().contains("storage.min_free_bytes"),
        "{refusal}"
    );
    assert!(!acknowledged.is_empty());
    // Reads go on, and every acknowledged write is there.
    for (n, key) in acknowledged.iter().enumerate() {
        let answer = get(&client, key, proto::ReadConsistency::default())
            .await
            .unwrap();
        assert_eq!(answer.setting.unwrap().value, filler(n as u32));
    }
    let health = status(&client).await.unwrap();
    assert_eq!(health.state, "leader");
    println!(
        "reserve: {} writes of 60 KiB acknowledged before the refusal",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_stops_the_node_visibly_and_it_restarts_with_every_acknowledged_write() {
    let _serial = support::serial();
    let root = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&root.path().join("disk"), 32);
    let mut args = FAST_RAFT.to_vec();
    args.extend(["--min-free-bytes", "0"]);
    let mut node = TestNode::start(&disk.path, 1, &args);
    init_single(&node).await;
    let client = node.client();

    let mut acknowledged = Vec::new();
    let failure = loop {
        let key = format!("fill-{}", acknowledged.len());
        match set(&client, &key, &filler(acknowledged.len() as u32)).await {
            Ok(_) => acknowledged.push(key),
            Err(error) => break error,
        }
        assert!(acknowledged.len() < 2_000, "the disk never filled up");
    };
    // The write that met the full disk: its outcome is unknown, and said so.
    assert_ne!(code_of(&failure), Some(Code::Internal), "{failure}");
    let failed_at = Instant::now();

    // NOT_SERVING while it still answers lookups and status (before it exits).
    let channel = node.channel().await;
    let mut health = HealthClient::new(channel);
    let serving = health
        .check(HealthCheckRequest {
            service: "trunkline.v1.RouteService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status(), ServingStatus::NotServing);
    let state = status(&client).await.unwrap();
    assert!(state.state.starts_with("stopped"), "{}", state.state);
    assert_eq!(state.leader_id, 0);
    let read = get(&client, "fill-0", proto::ReadConsistency::default())
        .await
        .unwrap();
    assert_eq!(read.setting.unwrap().value, filler(0));
    println!("full disk: the write that met it got {failure}");

    let exit = node.wait_for_exit(Duration::from_secs(15));
    let exit = exit.unwrap_or_else(|| panic!("the node did not exit:\n{}", node.log()));
    assert!(!exit.success(), "{exit:?}\n{}", node.log());
    println!(
        "full disk: {} writes acknowledged; exited {:?} after {:?}",
        acknowledged.len(),
        exit.code(),
        failed_at.elapsed()
    );

    // A start on the still-full disk fails or limps; whatever it leaves behind, and a partial
    // sled snapshot file (what a failed start used to leave, after which every start failed
    // with "Read corrupted data at file offset None"), must not stop the start that follows.
    let attempt = node.run_briefly(Duration::from_secs(5));
    println!("full disk: a start on the full disk ended with {attempt:?}");
    std::fs::write(
        node.data_dir.join("db/snap.0000000000ABCDEF.generating"),
        b"",
    )
    .ok();

    // Space comes back: the node starts on its data with every acknowledged write.
    disk.resize(96);
    let restarted_at = Instant::now();
    node.restart();
    let client = node.client();
    support::wait_for_leader(&client, Duration::from_secs(20)).await;
    for (n, key) in acknowledged.iter().enumerate() {
        let answer = get(&client, key, proto::ReadConsistency::default())
            .await
            .unwrap();
        assert_eq!(
            answer.setting.map(|setting| setting.value),
            Some(filler(n as u32)),
            "{key} lost"
        );
    }
    set(&client, "after-recovery", "written").await.unwrap();
    println!(
        "full disk: serving again {:?} after space was freed",
        restarted_at.elapsed()
    );
    let leftovers: Vec<_> = std::fs::read_dir(node.data_dir.join("db"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".generating"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// sled keeps the log's values in memory until a purge, and a purge follows a snapshot: the
/// node snapshots once the log grew by `raft.snapshot_after_log_bytes`, long before the
/// entry count (10,000) would. Before, 243 replaced 200,000-row decks held 2.4 GB.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_grown_by_its_byte_threshold_is_snapshotted() {
    let _serial = support::serial();
    let root = tempfile::tempdir().unwrap();
    let mut args = FAST_RAFT.to_vec();
    args.extend([
        "--snapshot-after-log-bytes",
        "1048576",
        "--max-in-snapshot-log-to-keep",
        "0",
    ]);
    let node = TestNode::start(root.path(), 1, &args);
    init_single(&node).await;
    let client = node.client();
    assert_eq!(status(&client).await.unwrap().snapshot_index, 0);
    for n in 0..40 {
        set(&client, &format!("big-{n}"), &filler(n)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let snapshot_index = loop {
        let index = status(&client).await.unwrap().snapshot_index;
        if index > 0 {
            break index;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot after 2.4 MB of log with a 1 MiB threshold:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // By entry count (raft.snapshot_logs_since_last, 10,000) there would be none.
    println!("log size: snapshot at index {snapshot_index} after 40 writes of 60 KiB");
}

/// A committed deck leaves its import's chunks in the log as dead weight that sled holds in
/// memory and a restart would stage again: the node snapshots right after the commit, far
/// below `raft.snapshot_after_log_bytes` (64 MiB by default). Before, nothing was compacted
/// until 64 MiB more of log.
#[tokio::test(flavor = "multi_thread")]
async fn a_committed_deck_is_compacted_out_of_the_log() {
    let _serial = support::serial();
    let root = tempfile::tempdir().unwrap();
    let node = TestNode::start(root.path(), 1, FAST_RAFT);
    init_single(&node).await;
    let client = node.client();
    support::routing::put_carrier(&client, "bulk", vec![]).await;
    let rows_per_chunk = trunkline_core::routing::MAX_ROWS_PER_CHUNK;
    let chunks = 6;
    for chunk in 0..chunks {
        let rates = (0..rows_per_chunk)
            .map(|row| proto::Rate {
                prefix: format!("4{:08}", chunk * rows_per_chunk + row),
                rate_micros_per_minute: 1_000 + row as u64,
                description: "a description long enough to make the log grow".into(),
                ..Default::default()
            })
            .collect();
        let first_line = (chunk * rows_per_chunk + 2) as u64;
        support::routing::stage(&client, "bulk", "compacted", rates, first_line).await;
    }
    let before = status(&client).await.unwrap().snapshot_index;
    let rows = (chunks * rows_per_chunk) as u64;
    let committed_at = support::routing::commit(&client, "bulk", "compacted", rows).await;
    assert!(
        before < committed_at,
        "a snapshot covered the commit before it was made"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let index = status(&client).await.unwrap().snapshot_index;
        if index >= committed_at {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot covers the commit at {committed_at} (latest at {index}):\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
