//! Backup and restore drill against real node processes: a backup taken while writes and
//! lookups run, the node and its data destroyed, `trunkline restore` making the first node
//! of a new cluster from the file, and every setting, tenant, carrier, gateway, deck row,
//! DID, device and continuity plan acknowledged before the backup found in it. Bad input — a
//! truncated, corrupted or foreign file, a folder that is not empty — is refused with a
//! clear message and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{
    routing::{alpha_and_beta, outbound, route_outbound},
    *,
};
use trunkline_client::{proto, Client, Retry};

const DID: &str = "+14155550100";
const AOR: &str = "sip:alice@acme.example";

fn linearizable() -> Option<proto::ReadConsistency> {
    Some(proto::ReadConsistency {
        linearizable: true,
        ..Default::default()
    })
}

/// Tenant acme's device and the DID that rings it, then a number, then voicemail.
async fn inbound_setup(client: &Client) {
    let device = proto::PutDeviceRequest {
        device: Some(proto::Device {
            aor: AOR.into(),
            tenant: "acme".into(),
            disabled: false,
            continuity: None,
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = device.clone();
            async move { admin.put_device(request).await }
        })
        .await
        .unwrap();
    let did = proto::PutDidRequest {
        did: Some(proto::Did {
            number: DID.into(),
            tenant: "acme".into(),
            device: AOR.into(),
            continuity: Some(proto::ContinuityPlan {
                targets: vec![
                    proto::ContinuityTarget {
                        destination: Some(proto::continuity_target::Destination::Number(
                            "+442071838750".into(),
                        )),
                        ring_timeout_ms: 20_000,
                    },
                    proto::ContinuityTarget {
                        destination: Some(proto::continuity_target::Destination::Voicemail(
                            "alice".into(),
                        )),
                        ring_timeout_ms: 30_000,
                    },
                ],
                triggers: None,
            }),
        }),
        mode: proto::PutMode::Unspecified.into(),
    };
    client
        .admin(Retry::NotSent, |mut admin| {
            let request = did.clone();
            async move { admin.put_did(request).await }
        })
        .await
        .unwrap();
}

/// Everything configured, read linearizably, with the read states (which name the node and
/// its index) cleared so two clusters' answers compare.
async fn configuration(
    client: &Client,
) -> (
    proto::ListRoutingResponse,
    proto::ListInboundResponse,
    Vec<(String, Vec<proto::Rate>)>,
) {
    let mut routing = client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .list_routing(proto::ListRoutingRequest {
                    consistency: linearizable(),
                })
                .await
        })
        .await
        .unwrap();
    routing.read_state = None;
    let mut inbound = client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .list_inbound(proto::ListInboundRequest {
                    consistency: linearizable(),
                })
                .await
        })
        .await
        .unwrap();
    inbound.read_state = None;
    let mut decks = Vec::new();
    for carrier in routing.carriers.iter().map(|carrier| carrier.name.clone()) {
        let request = proto::ExportRatesRequest {
            carrier: carrier.clone(),
            consistency: linearizable(),
        };
        let mut stream = client
            .admin(Retry::Idempotent, |mut admin| {
                let request = request.clone();
                async move { admin.export_rates(request).await }
            })
            .await
            .unwrap();
        let mut rates = Vec::new();
        while let Some(chunk) = stream.message().await.unwrap() {
            rates.extend(chunk.rates);
        }
        decks.push((carrier, rates));
    }
    (routing, inbound, decks)
}

async fn take_backup(client: &Client) -> Vec<u8> {
    let mut stream = client
        .admin(Retry::NotSent, |mut admin| async move {
            admin.backup(proto::BackupRequest {}).await
        })
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let mut total = 0;
    while let Some(chunk) = stream.message().await.unwrap() {
        if chunk.total_bytes > 0 {
            total = chunk.total_bytes;
        }
        bytes.extend(chunk.data);
    }
    assert_eq!(bytes.len() as u64, total);
    bytes
}

/// `trunkline restore`: its exit code and what it printed.
fn restore(file: &Path, data_dir: &Path, node_id: u64) -> (i32, String) {
    restore_with(file, data_dir, node_id, &[])
}

fn restore_with(file: &Path, data_dir: &Path, node_id: u64, extra: &[&str]) -> (i32, String) {
    let mut args: Vec<std::ffi::OsString> = vec!["restore".into(), file.into()];
    args.extend(["--data-dir".into(), data_dir.into()]);
    args.extend(["--node-id".into(), node_id.to_string().into()]);
    args.extend(["--cluster-name".into(), CLUSTER_NAME.into()]);
    args.extend(extra.iter().map(Into::into));
    run_trunkline(&args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_load_restores_into_a_new_cluster_with_everything_acknowledged() {
    let root = tempfile::tempdir().unwrap();
    let (mut node, client) = started(root.path(), &["--insecure"]).await;
    let index = alpha_and_beta(&client).await;
    inbound_setup(&client).await;

    // Load: settings written one after another (each acknowledged one remembered), lookups
    // beside them.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String, u64)>::new()));
    let writer = {
        let (client, stop, acknowledged) = (node.client(), stop.clone(), acknowledged.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (key, value) = (format!("load/{n}"), format!("value-{n}"));
                if let Ok(written) = set(&client, &key, &value).await {
                    acknowledged
                        .lock()
                        .unwrap()
                        .push((key, value, written.applied_index));
                }
                n += 1;
            }
        })
    };
    let looker = {
        let (client, stop) = (node.client(), stop.clone());
        tokio::spawn(async move {
            let mut routed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let call_id = format!("lookup-{routed}");
                let answer =
                    route_outbound(&client, outbound("acme", &call_id, "+442071838750", index))
                        .await
                        .unwrap();
                assert!(!answer.legs.is_empty());
                routed += 1;
            }
            routed
        })
    };
    while acknowledged.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = configuration(&client).await;
    let acknowledged_before: Vec<_> = acknowledged.lock().unwrap().clone();
    let bytes = take_backup(&client).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(looker.await.unwrap() > 0, "lookups ran during the backup");
    let file = root.path().join("cluster.backup");
    std::fs::write(&file, &bytes).unwrap();

    // The cluster is destroyed: the node killed, its data gone.
    node.kill();
    std::fs::remove_dir_all(root.path().join("node-1")).unwrap();

    // Bad input first: nothing is made of a damaged, truncated or foreign file, or in a
    // folder that is not empty.
    let target = root.path().join("node-7");
    let damaged = root.path().join("damaged.backup");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    std::fs::write(&damaged, &flipped).unwrap();
    let (code, said) = restore(&damaged, &target, 7);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("SHA-256 does not match"), "{said}");
    let truncated = root.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let (code, said) = restore(&truncated, &target, 7);
    assert_eq!(code, 2, "{said}");
    assert!(
        said.contains("damaged") || said.contains("truncated"),
        "{said}"
    );
    let foreign = root.path().join("foreign.backup");
    std::fs::write(&foreign, b"SQLite format 3\0 and so on").unwrap();
    let (code, said) = restore(&foreign, &target, 7);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("not a Trunkline backup"), "{said}");
    assert!(!target.exists(), "a refused restore made the folder");
    let occupied = root.path().join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("keep.txt"), b"mine").unwrap();
    let (code, said) = restore(&file, &occupied, 7);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("not empty"), "{said}");
    assert_eq!(std::fs::read_dir(&occupied).unwrap().count(), 1);

    // The new cluster: node 7, from the backup.
    let (code, said) = restore(&file, &target, 7);
    assert_eq!(code, 0, "{said}");
    let restored = TestNode::start(root.path(), 7, &["--insecure"]);
    let client = restored.client();
    assert_eq!(wait_for_leader(&client, Duration::from_secs(10)).await, 7);

    // Its own entry in the membership gets the addresses it serves on.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let members = client
            .admin(Retry::Idempotent, |mut admin| async move {
                admin
                    .list_members(proto::ListMembersRequest::default())
                    .await
            })
            .await
            .unwrap();
        let member = members.members.iter().find(|member| member.node_id == 7);
        if member.is_some_and(|member| member.api_addr == restored.api_addr) {
            assert_eq!(members.members.len(), 1, "{members:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restored node's addresses never reached the membership: {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let after = configuration(&client).await;
    assert_eq!(after.0, before.0, "tenants, carriers, gateways");
    assert_eq!(after.1, before.1, "DIDs, devices, continuity plans");
    assert_eq!(after.2, before.2, "every deck row");
    assert!(!before.2.iter().all(|(_, rates)| rates.is_empty()));
    assert!(!before.1.dids.is_empty() && !before.1.devices.is_empty());
    for (key, value, _) in &acknowledged_before {
        let read = get(
            &client,
            key,
            proto::ReadConsistency {
                linearizable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            read.setting.map(|setting| setting.value).as_deref(),
            Some(value.as_str()),
            "{key}, acknowledged before the backup"
        );
    }

    // The new cluster routes and takes writes; its log goes on after the backup's.
    let answer = route_outbound(
        &client,
        outbound("acme", "after-restore", "+442071838750", 0),
    )
    .await
    .unwrap();
    assert_eq!(
        answer.legs.first().map(|leg| leg.carrier.as_str()),
        Some("alpha")
    );
    let last_before = acknowledged_before.last().unwrap().2;
    let written = set(&client, "after/restore", "yes").await.unwrap();
    assert!(written.applied_index > last_before);

    // A fresh node joins it (sent a snapshot whose membership has the restored node's
    // addresses) and serves what the backup held.
    let fresh = TestNode::start(root.path(), 8, &["--insecure"]);
    join_and_promote(&client, &fresh, &|| restored.log()).await;
    assert_eq!(
        value_at(&fresh.client(), "after/restore", written.applied_index)
            .await
            .as_deref(),
        Some("yes")
    );
    let (key, value, index) = acknowledged_before.first().unwrap();
    assert_eq!(
        value_at(&fresh.client(), key, *index).await.as_deref(),
        Some(value.as_str())
    );
}

const KEY: &str = "7 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
const WRONG_KEY: &str = "7 ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_backup_restores_only_with_its_key_into_a_sealed_folder() {
    let root = tempfile::tempdir().unwrap();
    let keys = root.path().join("keys");
    std::fs::write(&keys, KEY).unwrap();
    let wrong = root.path().join("wrong-keys");
    std::fs::write(&wrong, WRONG_KEY).unwrap();
    let key_arg = ["--encryption-key-file", keys.to_str().unwrap()];
    let mut args = vec!["--insecure"];
    args.extend(key_arg);
    let (mut node, client) = started(root.path(), &args).await;
    let written = set(&client, "sealed/number", "+14155559876").await.unwrap();
    let bytes = take_backup(&client).await;
    node.kill();
    let file = root.path().join("sealed.backup");
    std::fs::write(&file, &bytes).unwrap();
    assert!(!bytes
        .windows(b"+14155559876".len())
        .any(|window| window == b"+14155559876"));

    let target = root.path().join("node-9");
    let (code, said) = restore(&file, &target, 9);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("sealed with key 7"), "{said}");
    let (code, said) = restore_with(
        &file,
        &target,
        9,
        &["--encryption-key-file", wrong.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("does not open"), "{said}");
    assert!(!target.exists());

    let (code, said) = restore_with(&file, &target, 9, &key_arg);
    assert_eq!(code, 0, "{said}");
    let restored = TestNode::start(root.path(), 9, &args);
    let client = restored.client();
    wait_for_leader(&client, Duration::from_secs(10)).await;
    assert_eq!(
        value_at(&client, "sealed/number", written.applied_index)
            .await
            .as_deref(),
        Some("+14155559876")
    );
}
