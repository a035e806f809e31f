//! `trunkctl carrier list`: every carrier.

use crate::{
    commands::{config::ReadFlags, objects, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    let routing = objects::list_routing(context, args.read.into()).await?;
    let carriers: Vec<view::Carrier> = routing
        .carriers
        .iter()
        .map(|carrier| view::Carrier::new(carrier, super::deck_rows(&routing, &carrier.name)))
        .collect();
    output::emit(context.format, &carriers, |carriers| {
        view::carriers_table(carriers)
    })
}
