//! `trunkctl edge remove NAME`: forget an edge proxy; it is no longer probed and bindings
//! through it count as up again. Its registrations are not touched.

use trunkline_client::{proto, Retry};

use crate::{
    commands::{inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The edge's name.
    name: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("edge name", &args.name)?;
    let request = proto::DeleteEdgeRequest {
        name: args.name.clone(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.delete_edge(request).await }
        })
        .await
        .map_err(inbound::or_not_found("edge", &args.name))?;
    objects::print_written(
        context,
        "edge",
        &args.name,
        "removed",
        response.applied_index,
    )
}
