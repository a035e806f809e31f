//! Losing a site: a quorum of voters gone for good, routing brought back from what survives
//! (an edge site's learner) with `trunkline recover --force-new-cluster`, real processes.
//! A cluster of three voters and a learner; refused while a quorum still answers; then two
//! voters killed with their data, the learner made the first node of a new cluster, two fresh
//! nodes joined to it, and everything the learner had applied still there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::{
    routing::{alpha_and_beta, outbound, route_outbound},
    *,
};
use trunkline_client::{proto, Retry};

fn force_new_cluster(data_dir: &Path) -> (i32, String) {
    run_trunkline(&[
        "recover".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "--force-new-cluster".as_ref(),
    ])
}

/// A folder's files and their sizes, to show a refused recover changed nothing that matters.
fn files_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_learner_becomes_a_new_cluster_when_a_quorum_of_voters_is_gone_for_good() {
    let _serial = serial();
    let extra = [&["--insecure"], FAST_RAFT].concat();
    let mut cluster = TestCluster::start(3, &extra).await;
    let learner = TestNode::start(cluster.root.path(), 4, &extra);
    cluster.nodes.push(learner);
    cluster.join(4).await;

    let client = cluster.client();
    let routing_index = alpha_and_beta(&client).await;
    let mut written = Vec::new();
    for n in 0..30 {
        let key = format!("site/{n}");
        let value = format!("value-{n}");
        let response = set(&client, &key, &value).await.unwrap();
        written.push((key, value, response.applied_index));
    }
    let last_index = written.last().unwrap().2;
    // What the learner has applied: everything above, read from it alone.
    let learner_client = cluster.get(4).client();
    assert_eq!(
        value_at(&learner_client, "site/29", last_index)
            .await
            .as_deref(),
        Some("value-29")
    );

    // Refused while a quorum answers: every voter is up.
    cluster.node(4).kill();
    let learner_dir = cluster.get(4).data_dir.clone();
    let before = files_of(&learner_dir);
    let (code, said) = force_new_cluster(&learner_dir);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("still has a quorum"), "{said}");
    assert_eq!(files_of(&learner_dir), before);
    assert!(!said.contains("moved"), "{said}");

    // The site is lost: two voters and their data gone for good. Voter 3 lives on, alone.
    for node_id in [1, 2] {
        cluster.node(node_id).kill();
        std::fs::remove_dir_all(&cluster.get(node_id).data_dir).unwrap();
    }
    let (code, said) = force_new_cluster(&learner_dir);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("one voter of a new cluster"), "{said}");

    cluster.node(4).restart();
    let client = cluster.get(4).client();
    assert_eq!(wait_for_leader(&client, Duration::from_secs(10)).await, 4);
    for (key, value, index) in &written {
        assert_eq!(
            value_at(&client, key, *index).await.as_deref(),
            Some(value.as_str()),
            "{key}, applied on the learner before the site was lost"
        );
    }

    // Two fresh nodes join the new cluster, which then routes and writes through any of them.
    let root = cluster.root.path().to_owned();
    let fresh: Vec<TestNode> = [5, 6]
        .into_iter()
        .map(|node_id| TestNode::start(&root, node_id, &extra))
        .collect();
    for node in &fresh {
        join_and_promote(&client, node, &|| cluster.get(4).log()).await;
    }
    let members = client
        .admin(Retry::Idempotent, |mut admin| async move {
            admin
                .list_members(proto::ListMembersRequest::default())
                .await
        })
        .await
        .unwrap();
    let voters: Vec<u64> = members
        .members
        .iter()
        .filter(|member| member.role == proto::MemberRole::Voter as i32)
        .map(|member| member.node_id)
        .collect();
    assert_eq!(voters, vec![4, 5, 6], "{members:?}");
    for node in &fresh {
        let client = node.client();
        let written = set(&client, &format!("after/{}", node.node_id), "yes")
            .await
            .unwrap();
        assert!(written.applied_index > last_index);
        assert_eq!(
            value_at(&client, "site/0", last_index).await.as_deref(),
            Some("value-0")
        );
        let answer = route_outbound(
            &client,
            outbound(
                "acme",
                &format!("call-{}", node.node_id),
                "+442071838750",
                routing_index,
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            answer.legs.first().map(|leg| leg.carrier.as_str()),
            Some("alpha")
        );
    }
    drop(fresh);
}
