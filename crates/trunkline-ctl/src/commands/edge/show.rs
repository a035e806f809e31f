//! `trunkctl edge show NAME`: one edge's settings (`trunkctl health` has its state).

use crate::{
    commands::{config::ReadFlags, inbound, objects, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// The edge's name.
    name: String,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("edge name", &args.name)?;
    let configuration = inbound::list_inbound(context, args.read.into()).await?;
    let edge = inbound::find_edge(&configuration, &args.name)
        .map(view::Edge::from)
        .ok_or_else(|| inbound::not_found("edge", &args.name))?;
    output::emit(context.format, &edge, view::edge_details)
}
