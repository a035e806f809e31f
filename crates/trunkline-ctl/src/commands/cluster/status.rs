//! `trunkctl cluster status`: the cluster as each endpoint sees it.
//!
//! Every endpoint is asked, not only the first that answers: a split or lagging node shows up
//! as a row that disagrees with the others.

use serde::Serialize;
use trunkline_client::{proto, Retry};

use crate::{
    commands::view,
    context::{Context, Failure},
    output,
};

#[derive(Serialize)]
struct NodeStatus {
    endpoint: String,
    /// Set when the endpoint could not be asked.
    error: Option<String>,
    node_id: u64,
    cluster_name: String,
    state: String,
    leader_id: u64,
    term: u64,
    last_log_index: u64,
    committed_index: u64,
    applied_index: u64,
    snapshot_index: u64,
    staleness_ms: u64,
    uninitialized: bool,
    /// Peer-listener messages the node refused since it started.
    refused_peer_messages: u64,
    followers: Vec<FollowerLag>,
    members: Vec<view::Member>,
}

#[derive(Serialize)]
struct FollowerLag {
    node_id: u64,
    matched_index: u64,
    lag_entries: u64,
}

pub async fn exec(context: &Context) -> Result<(), Failure> {
    let mut statuses = Vec::new();
    for endpoint in context.client.endpoints() {
        let client = context
            .client
            .only(endpoint)
            .map_err(|error| Failure::Usage(error.to_string()))?;
        let status = client
            .admin(Retry::Idempotent, |mut admin| async move {
                admin.cluster_status(proto::ClusterStatusRequest {}).await
            })
            .await;
        statuses.push(match status {
            Ok(status) => NodeStatus {
                endpoint: endpoint.clone(),
                error: None,
                node_id: status.node_id,
                cluster_name: status.cluster_name,
                state: status.state,
                leader_id: status.leader_id,
                term: status.term,
                last_log_index: status.last_log_index,
                committed_index: status.committed_index,
                applied_index: status.applied_index,
                snapshot_index: status.snapshot_index,
                staleness_ms: status.staleness_ms,
                uninitialized: status.uninitialized,
                refused_peer_messages: status.refused_peer_messages,
                followers: status
                    .followers
                    .iter()
                    .map(|lag| FollowerLag {
                        node_id: lag.node_id,
                        matched_index: lag.matched_index,
                        lag_entries: lag.lag_entries,
                    })
                    .collect(),
                members: view::members(&status.members),
            },
            Err(error) => NodeStatus {
                endpoint: endpoint.clone(),
                error: Some(error.to_string()),
                node_id: 0,
                cluster_name: String::new(),
                state: "unreachable".into(),
                leader_id: 0,
                term: 0,
                last_log_index: 0,
                committed_index: 0,
                applied_index: 0,
                snapshot_index: 0,
                staleness_ms: 0,
                uninitialized: false,
                refused_peer_messages: 0,
                followers: Vec::new(),
                members: Vec::new(),
            },
        });
    }
    let reachable = statuses.iter().any(|status| status.error.is_none());
    output::emit(context.format, &statuses, |statuses| render(statuses))?;
    if reachable {
        Ok(())
    } else {
        Err(Failure::Request(format!(
            "no endpoint answered.{}",
            crate::context::UNREACHABLE_HINT
        )))
    }
}

fn render(statuses: &[NodeStatus]) -> String {
    // An unreachable endpoint shows its address, "unreachable" and dashes.
    let known = |status: &NodeStatus, value: String| match status.error {
        Some(_) => "-".to_owned(),
        None => value,
    };
    let mut text = output::columns(
        statuses,
        &[
            ("ENDPOINT", &|status| status.endpoint.clone()),
            ("NODE", &|status| known(status, status.node_id.to_string())),
            (
                "STATE",
                &|status| match (&status.error, status.uninitialized) {
                    (Some(_), _) => "unreachable".to_owned(),
                    (None, true) => "uninitialised".to_owned(),
                    (None, false) => status.state.clone(),
                },
            ),
            ("LEADER", &|status| {
                let leader = match status.leader_id {
                    0 => "none".to_owned(),
                    leader => leader.to_string(),
                };
                known(status, leader)
            }),
            ("TERM", &|status| known(status, status.term.to_string())),
            ("LAST LOG", &|status| {
                known(status, status.last_log_index.to_string())
            }),
            ("COMMITTED", &|status| {
                known(status, status.committed_index.to_string())
            }),
            ("APPLIED", &|status| {
                known(status, status.applied_index.to_string())
            }),
            ("LEADER CONTACT", &|status| {
                let contact = match status.staleness_ms {
                    u64::MAX => "never".to_owned(),
                    staleness_ms => format!("{staleness_ms} ms"),
                };
                known(status, contact)
            }),
        ],
    );
    for status in statuses {
        if let Some(error) = &status.error {
            text.push_str(&format!("\n{}: {error}\n", status.endpoint));
        }
        if status.refused_peer_messages > 0 {
            text.push_str(&format!(
                "\nnode {} refused {} peer messages since it started; its log names the \
                 senders\n",
                status.node_id, status.refused_peer_messages
            ));
        }
        if !status.followers.is_empty() {
            let lag = output::columns(
                &status.followers,
                &[
                    ("FOLLOWER", &|lag| lag.node_id.to_string()),
                    ("MATCHED", &|lag| lag.matched_index.to_string()),
                    ("LAG", &|lag| lag.lag_entries.to_string()),
                ],
            );
            text.push_str(&format!(
                "\nReplication from leader {}:\n{lag}",
                status.node_id
            ));
        }
    }
    if let Some(status) = statuses.iter().find(|status| !status.members.is_empty()) {
        text.push_str(&format!(
            "\nMembers (as node {} sees them):\n{}",
            status.node_id,
            view::members_table(&status.members)
        ));
    }
    text
}
