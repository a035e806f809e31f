//! Idempotency keys on real processes: a write sent twice with one key (to the leader, or to
//! a follower that forwards it) applies once and answers alike on every node; a malformed key
//! is refused naming the header; and the client's keyed writes carry a fresh key per call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use support::*;
use tonic::{metadata::MetadataValue, Code};
use trunkline_client::{
    proto::{self, admin_service_client::AdminServiceClient},
    Retry,
};

async fn keyed_set(
    node: &TestNode,
    key: Option<&str>,
    value: &str,
) -> Result<proto::SettingWriteResponse, tonic::Status> {
    let mut admin = AdminServiceClient::new(node.channel().await);
    let mut request = tonic::Request::new(proto::SetSettingRequest {
        key: "dial.timeout".into(),
        value: value.into(),
    });
    if let Some(key) = key {
        request.metadata_mut().insert(
            "trunkline-idempotency-key",
            MetadataValue::try_from(key).unwrap(),
        );
    }
    admin
        .set_setting(request)
        .await
        .map(tonic::Response::into_inner)
}

fn version(response: &proto::SettingWriteResponse) -> u64 {
    response.current.as_ref().unwrap().version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_write_sent_twice_applies_once_through_any_node() {
    let _serial = serial();
    let cluster = TestCluster::start(3, FAST_RAFT).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // Through the leader, then the same key again through a follower (forwarded): once.
    let first = keyed_set(cluster.get(leader), Some("c0ffee-1"), "30")
        .await
        .unwrap();
    assert_eq!(version(&first), 1);
    let again = keyed_set(cluster.get(follower), Some("c0ffee-1"), "30")
        .await
        .unwrap();
    assert_eq!(again.current, first.current, "the first answer, again");
    assert!(again.applied_index >= first.applied_index);

    // Every node holds version 1: the repeat changed nothing anywhere.
    for node in 1..=3 {
        let setting = get(
            &cluster.get(node).client(),
            "dial.timeout",
            proto::ReadConsistency {
                min_applied_index: again.applied_index,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(setting.setting.unwrap().version, 1, "node {node}");
    }

    // Another sequence, or no key, applies.
    let next = keyed_set(cluster.get(follower), Some("c0ffee-2"), "31")
        .await
        .unwrap();
    assert_eq!(version(&next), 2);
    let unkeyed = keyed_set(cluster.get(leader), None, "31").await.unwrap();
    assert_eq!(version(&unkeyed), 3);

    // A malformed key is refused before anything is written, naming the header.
    for bad in ["nohyphen", "-1", "xyz-1", "c0ffee-", "11112222333344445-1"] {
        let status = keyed_set(cluster.get(leader), Some(bad), "99")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(
            status.metadata().get("trunkline-field").unwrap(),
            "trunkline-idempotency-key"
        );
    }

    // The client's keyed writes: each call its own key (two calls, two versions).
    let client = cluster.client();
    for value in ["40", "41"] {
        let request = proto::SetSettingRequest {
            key: "dial.timeout".into(),
            value: value.into(),
        };
        client
            .admin(Retry::Write, |mut admin| {
                let request = request.clone();
                async move { admin.set_setting(request).await }
            })
            .await
            .unwrap();
    }
    let setting = get(
        &client,
        "dial.timeout",
        proto::ReadConsistency {
            linearizable: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .setting
    .unwrap();
    assert_eq!((setting.value.as_str(), setting.version), ("41", 5));
}
