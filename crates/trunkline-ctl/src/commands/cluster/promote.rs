//! `trunkctl cluster promote N`: make a learner a voter.

use trunkline_client::{proto, Retry};

use crate::context::{require_node_id, Context, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// The learner's node id.
    node_id: u64,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    let node_id = require_node_id(args.node_id)?;
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| async move {
            admin
                .promote_member(proto::PromoteMemberRequest { node_id })
                .await
        })
        .await?;
    super::print_membership(context, response, format!("Node {node_id} is now a voter"))
}
