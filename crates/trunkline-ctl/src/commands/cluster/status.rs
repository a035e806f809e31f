//! `trunkctl cluster status`: the cluster as each endpoint sees it.
//!
//! Every endpoint is asked, not only the first that answers: a split or lagging node shows up
//! as a row that disagrees with the others.

use serde::Serialize;
use trunkline_client::{proto, Client, Retry};

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
        let client =
            Client::new([endpoint.clone()]).map_err(|error| Failure::Usage(error.to_string()))?;
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
        Err(Failure::Request(
            "no endpoint answered: is trunkline running there? Check --endpoints.".into(),
        ))
    }
}

fn render(statuses: &[NodeStatus]) -> String {
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|status| {
            if status.error.is_some() {
                return vec![
                    status.endpoint.clone(),
                    "-".into(),
                    "unreachable".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ];
            }
            let state = if status.uninitialized {
                "uninitialised".to_owned()
            } else {
                status.state.clone()
            };
            vec![
                status.endpoint.clone(),
                status.node_id.to_string(),
                state,
                if status.leader_id == 0 {
                    "none".into()
                } else {
                    status.leader_id.to_string()
                },
                status.term.to_string(),
                status.last_log_index.to_string(),
                status.committed_index.to_string(),
                status.applied_index.to_string(),
                if status.staleness_ms == u64::MAX {
                    "never".into()
                } else {
                    format!("{} ms", status.staleness_ms)
                },
            ]
        })
        .collect();
    let mut text = output::table(
        &[
            "ENDPOINT",
            "NODE",
            "STATE",
            "LEADER",
            "TERM",
            "LAST LOG",
            "COMMITTED",
            "APPLIED",
            "LEADER CONTACT",
        ],
        &rows,
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
            let lag: Vec<Vec<String>> = status
                .followers
                .iter()
                .map(|lag| {
                    vec![
                        lag.node_id.to_string(),
                        lag.matched_index.to_string(),
                        lag.lag_entries.to_string(),
                    ]
                })
                .collect();
            text.push_str(&format!(
                "\nReplication from leader {}:\n{}",
                status.node_id,
                output::table(&["FOLLOWER", "MATCHED", "LAG"], &lag)
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
