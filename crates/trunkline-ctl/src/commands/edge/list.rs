//! `trunkctl edge list`: every declared edge proxy.

use crate::{
    commands::{config::ReadFlags, inbound, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    let configuration = inbound::list_inbound(context, args.read.into()).await?;
    let edges: Vec<view::Edge> = configuration.edges.iter().map(view::Edge::from).collect();
    output::emit(context.format, &edges, |edges| view::edges_table(edges))
}
