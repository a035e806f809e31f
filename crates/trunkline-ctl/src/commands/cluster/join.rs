//! `trunkctl cluster join`: add a running node as a learner.

use trunkline_client::{proto, Retry};

use crate::context::{require_node_id, Context, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// The new node's id (its `node_id` setting).
    #[arg(long)]
    node_id: u64,
    /// Where the members reach its peer listener (host:port).
    #[arg(long)]
    peer_addr: String,
    /// Where clients reach its API listener (host:port).
    #[arg(long)]
    api_addr: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    let node_id = require_node_id(args.node_id)?;
    for (flag, value) in [
        ("--peer-addr", &args.peer_addr),
        ("--api-addr", &args.api_addr),
    ] {
        if !trunkline_api::is_host_port(value) {
            return Err(Failure::Usage(format!("{flag} {value:?} is not host:port")));
        }
    }
    let request = proto::JoinClusterRequest {
        node_id,
        peer_addr: args.peer_addr,
        api_addr: args.api_addr,
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.join_cluster(request).await }
        })
        .await?;
    super::print_membership(
        context,
        response,
        format!("Node {node_id} joined as a learner; promote it with `trunkctl cluster promote {node_id}`"),
    )
}
