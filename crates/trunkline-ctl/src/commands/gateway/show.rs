//! `trunkctl gateway show NAME`: one gateway's settings and state.

use crate::{
    commands::{config::ReadFlags, objects, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// The gateway's name.
    name: String,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("gateway name", &args.name)?;
    let routing = objects::list_routing(context, args.read.into()).await?;
    let gateway = super::find(&routing, &args.name)
        .map(view::Gateway::from)
        .ok_or_else(|| objects::not_found("gateway", &args.name))?;
    output::emit(context.format, &gateway, view::gateway_details)
}
