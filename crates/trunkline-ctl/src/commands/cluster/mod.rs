//! `trunkctl cluster ...`: membership and status.

mod status;

use serde::Serialize;
use trunkline_client::{proto, Retry};

use crate::{
    commands::{config::ReadFlags, view},
    context::{require_node_id, Context, Failure},
    output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make the node at the first endpoint the first member of a new cluster (once).
    Init,
    /// Add a running, empty node as a learner (replicates and serves reads, no vote).
    Join {
        /// The new node's id (its `node_id` setting).
        #[arg(long)]
        node_id: u64,
        /// Where the members reach its peer listener (host:port).
        #[arg(long)]
        peer_addr: String,
        /// Where clients reach its API listener (host:port).
        #[arg(long)]
        api_addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner's node id.
        node_id: u64,
    },
    /// Remove a voter or learner.
    Remove {
        /// The member's node id.
        node_id: u64,
    },
    /// Leader, term, indexes and replication lag.
    Status,
    /// Members with their roles and addresses (--linearizable: as the leader sees them).
    Members {
        #[command(flatten)]
        read: ReadFlags,
    },
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Init => init(context).await,
        Command::Join {
            node_id,
            peer_addr,
            api_addr,
        } => {
            let node_id = require_node_id(node_id)?;
            for (flag, value) in [("--peer-addr", &peer_addr), ("--api-addr", &api_addr)] {
                if !trunkline_api::is_host_port(value) {
                    return Err(Failure::Usage(format!("{flag} {value:?} is not host:port")));
                }
            }
            let request = proto::JoinClusterRequest {
                node_id,
                peer_addr,
                api_addr,
            };
            let response = context
                .admin(Retry::NotSent, request, |mut admin, request| async move {
                    admin.join_cluster(request).await
                })
                .await?;
            print_membership(
                context,
                response,
                format!(
                    "Node {node_id} joined as a learner; promote it with `trunkctl cluster \
                     promote {node_id}`"
                ),
            )
        }
        Command::Promote { node_id } => {
            let node_id = require_node_id(node_id)?;
            let response = context
                .client
                .admin(Retry::NotSent, |mut admin| async move {
                    let request = proto::PromoteMemberRequest { node_id };
                    admin.promote_member(request).await
                })
                .await?;
            print_membership(context, response, format!("Node {node_id} is now a voter"))
        }
        Command::Remove { node_id } => {
            let node_id = require_node_id(node_id)?;
            let response = context
                .client
                .admin(Retry::NotSent, |mut admin| async move {
                    let request = proto::RemoveMemberRequest { node_id };
                    admin.remove_member(request).await
                })
                .await?;
            print_membership(
                context,
                response,
                format!(
                    "Node {node_id} was removed; stop it and clear its data folder before \
                     reusing it"
                ),
            )
        }
        Command::Status => status::exec(context).await,
        Command::Members { read } => {
            let response = context
                .client
                .admin(Retry::Idempotent, |mut admin| async move {
                    let request = proto::ListMembersRequest {
                        consistency: Some(read.into()),
                    };
                    admin.list_members(request).await
                })
                .await?;
            let members = view::members(&response.members);
            output::emit(context.format, &members, |members| {
                if members.is_empty() {
                    "No members: the cluster is not initialised (run `trunkctl cluster init`)."
                        .to_owned()
                } else {
                    view::members_table(members)
                }
            })
        }
    }
}

/// `cluster init`: makes one node the first voter of a new cluster.
async fn init(context: &Context) -> Result<(), Failure> {
    if context.client.endpoints().len() != 1 {
        return Err(Failure::Usage(
            "cluster init initialises exactly one node: give exactly one --endpoints address"
                .into(),
        ));
    }
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| async move {
            admin.init_cluster(proto::InitClusterRequest {}).await
        })
        .await?;
    #[derive(Serialize)]
    struct Initialized {
        node_id: u64,
        cluster_name: String,
        /// The first admin token, shown this once.
        admin_token: String,
    }
    let initialized = Initialized {
        node_id: response.node_id,
        cluster_name: response.cluster_name,
        admin_token: response.admin_token,
    };
    output::emit(context.format, &initialized, |initialized| {
        format!(
            "Initialised cluster {:?} with node {} as its first voter.\nAdd nodes with \
             `trunkctl cluster join --node-id N --peer-addr HOST:PORT --api-addr HOST:PORT`.\n\
             \nThe first admin token, shown this once (store it now; pass it with --token, \
             TRUNKLINE_TOKEN or --token-file, and make narrower ones with `trunkctl token \
             create`):\n{}",
            initialized.cluster_name, initialized.node_id, initialized.admin_token
        )
    })
}

/// The answer to a membership change, as printed.
#[derive(Serialize)]
struct MembershipChange {
    log_index: u64,
    members: Vec<view::Member>,
}

fn print_membership(
    context: &Context,
    response: proto::MembershipResponse,
    done: String,
) -> Result<(), Failure> {
    let change = MembershipChange {
        log_index: response.log_index,
        members: view::members(&response.members),
    };
    output::emit(context.format, &change, |change| {
        format!(
            "{done} (log index {})\n\n{}",
            change.log_index,
            view::members_table(&change.members)
        )
    })
}
