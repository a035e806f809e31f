//! Encryption at rest on a real node: with a key file, a known phone number and a known carrier
//! URI written through the API are nowhere in the bytes of the data folder (and, as the
//! control, they are without one); the node restarts on its data with its keys, and refuses
//! to start with a wrong key, with none, or with keys for a folder made without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::{path::Path, time::Duration};

use support::{
    routing::{gateway, put_carrier, put_tenant, try_put_gateway, unprobed},
    serial, TestCluster,
};
use trunkline_client::{proto, Client, Retry};

const NUMBER: &str = "+14155559876";
const GATEWAY_HOST: &str = "secret-gw.example.net";
const KEY: &str = "7 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
const OTHER_KEY: &str = "7 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n";

async fn write_known_data(client: &Client) {
    put_tenant(client, "acme").await;
    put_carrier(client, "atlas", vec![]).await;
    try_put_gateway(
        client,
        unprobed(gateway("atlas-1", "atlas", &format!("sip:{GATEWAY_HOST}"))),
    )
    .await
    .unwrap();
    let request = proto::PutDidRequest {
        did: Some(proto::Did {
            number: NUMBER.into(),
            tenant: "acme".into(),
            ..Default::default()
        }),
        mode: proto::PutMode::Create.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_did(request).await }
        })
        .await
        .unwrap();
}

/// Files under `folder` whose bytes contain `needle`.
fn files_holding(folder: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn needles() -> [&'static str; 3] {
    [NUMBER, &NUMBER[1..], GATEWAY_HOST]
}

async fn did_listed(client: &Client) -> bool {
    let listed = client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .list_inbound(proto::ListInboundRequest::default())
                .await
        })
        .await
        .unwrap();
    listed.dids.iter().any(|did| did.number == NUMBER)
}

#[tokio::test]
async fn nothing_written_is_readable_in_the_data_folder_and_the_keys_must_fit() {
    let _serial = serial();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("keys");
    std::fs::write(&key_file, KEY).unwrap();
    let other_key_file = keys.path().join("other-keys");
    std::fs::write(&other_key_file, OTHER_KEY).unwrap();
    let key_arg = ["--encryption-key-file", key_file.to_str().unwrap()];

    // The control: without keys the same writes are in the folder in clear.
    let plain = TestCluster::start(1, &[]).await;
    write_known_data(&plain.get(1).client()).await;
    let mut plain = plain;
    assert!(plain.node(1).stop());
    let plain_dir = plain.get(1).data_dir.clone();
    for needle in needles() {
        assert!(
            !files_holding(&plain_dir, needle).is_empty(),
            "{needle} not found in the unencrypted folder: the search proves nothing"
        );
    }
    // Keys given for a folder made without them: refused, exit code 2, nothing changed.
    let (status, stderr) = plain.node(1).start_expecting_exit_with(&key_arg);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("made without encryption"), "{stderr}");

    // With keys, and snapshots often so the state is in a stored snapshot too: nowhere in any
    // file of the folder, log or snapshot or anything else.
    let mut sealed_args = key_arg.to_vec();
    sealed_args.extend(["--snapshot-logs-since-last", "5"]);
    let mut sealed = TestCluster::start(1, &sealed_args).await;
    let client = sealed.get(1).client();
    write_known_data(&client).await;
    for n in 0..10 {
        support::set(&client, &format!("filler/{n}"), "x")
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while support::status(&client).await.unwrap().snapshot_index == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot was stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sealed.node(1).stop());
    let sealed_dir = sealed.get(1).data_dir.clone();
    for needle in needles() {
        let found = files_holding(&sealed_dir, needle);
        assert!(found.is_empty(), "{needle} readable in {found:?}");
    }

    // Restarted with its keys it serves what was written.
    sealed.node(1).restart();
    let client = sealed.get(1).client();
    support::wait_for_leader(&client, Duration::from_secs(10)).await;
    assert!(did_listed(&client).await);
    assert!(sealed.node(1).stop());

    // A wrong key, and no key: refused with the reason, exit code 2.
    let wrong = ["--encryption-key-file", other_key_file.to_str().unwrap()];
    let (status, stderr) = sealed.node(1).start_expecting_exit_with(&wrong);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not open"), "{stderr}");
    let (status, stderr) = sealed.node(1).start_expecting_exit_with(&[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("encrypted and no key"), "{stderr}");
    // A malformed key file is a configuration error naming the line.
    std::fs::write(&other_key_file, "7 not-hex\n").unwrap();
    let (status, stderr) = sealed.node(1).start_expecting_exit_with(&wrong);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
}

const KEY_2: &str = "8 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\n";

#[tokio::test]
async fn a_new_key_is_rotated_in_and_then_the_old_one_can_go() {
    let _serial = serial();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("keys");
    std::fs::write(&key_file, KEY).unwrap();
    let key_arg = ["--encryption-key-file", key_file.to_str().unwrap()];
    let mut cluster = TestCluster::start(1, &key_arg).await;
    write_known_data(&cluster.get(1).client()).await;
    assert!(cluster.node(1).stop());

    // Only the new key: what the old one sealed can't be read.
    std::fs::write(&key_file, KEY_2).unwrap();
    let (status, stderr) = cluster.node(1).start_expecting_exit_with(&key_arg);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sealed with key 7"), "{stderr}");

    // Both keys: the node starts, and RotateKeys re-seals everything with the new one.
    std::fs::write(&key_file, format!("{KEY}{KEY_2}")).unwrap();
    cluster.node(1).restart();
    let client = cluster.get(1).client();
    support::wait_for_leader(&client, Duration::from_secs(10)).await;
    let mut stream = client
        .admin(Retry::NotSent, |mut admin| async move {
            admin.rotate_keys(proto::RotateKeysRequest {}).await
        })
        .await
        .unwrap();
    let mut last = None;
    while let Some(progress) = stream.message().await.unwrap() {
        last = Some(progress);
    }
    let last = last.unwrap();
    assert!(last.done, "{last:?}");
    assert_eq!(last.key_id, 8);
    assert!(
        last.resealed > 0 && last.examined >= last.resealed,
        "{last:?}"
    );
    assert!(cluster.node(1).stop());

    // The old key can go.
    std::fs::write(&key_file, KEY_2).unwrap();
    cluster.node(1).restart();
    let client = cluster.get(1).client();
    support::wait_for_leader(&client, Duration::from_secs(10)).await;
    assert!(did_listed(&client).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn recover_on_a_sealed_node_makes_a_sealed_folder_that_catches_up() {
    let _serial = serial();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("keys");
    std::fs::write(&key_file, KEY).unwrap();
    let key_arg = ["--encryption-key-file", key_file.to_str().unwrap()];
    let mut extra = key_arg.to_vec();
    extra.extend(support::FAST_RAFT);
    let mut cluster = TestCluster::start(3, &extra).await;
    let written = support::set(&cluster.client(), "sealed/key", "before")
        .await
        .unwrap();
    assert!(cluster.node(3).stop());

    let recovered = std::process::Command::new(support::trunkline_binary())
        .args(["recover", "--data-dir"])
        .arg(&cluster.get(3).data_dir)
        .args(key_arg)
        .output()
        .unwrap();
    assert!(
        recovered.status.success(),
        "{}",
        String::from_utf8_lossy(&recovered.stderr)
    );
    // The new folder is sealed like the old: the node starts on it with its keys (a folder
    // made without them was refused, "made without encryption") and catches up.
    cluster.node(3).restart();
    assert_eq!(
        support::value_at(
            &cluster.get(3).client(),
            "sealed/key",
            written.applied_index
        )
        .await
        .as_deref(),
        Some("before")
    );
    assert!(cluster.node(3).stop());
    assert!(files_holding(&cluster.get(3).data_dir, "before").is_empty());
}
