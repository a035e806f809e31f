//! `trunkctl edge remove NAME`: forget an edge proxy; it is no longer probed and bindings
//! through it count as up again. Its registrations are not touched.

use trunkline_client::proto;

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
    let applied_index =
        inbound::delete(context, proto::ObjectKind::Edge, "edge", &args.name).await?;
    objects::print_written(context, "edge", &args.name, "removed", applied_index)
}
