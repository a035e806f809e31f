//! `trunkctl tenant list`: every tenant.

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
    let tenants = super::views(&routing.tenants);
    output::emit(context.format, &tenants, |tenants| {
        view::tenants_table(tenants)
    })
}
