//! `trunkctl tenant show NAME`: one tenant's settings.

use crate::{
    commands::{config::ReadFlags, objects, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// The tenant's name.
    name: String,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("tenant name", &args.name)?;
    let routing = objects::list_routing(context, args.read.into()).await?;
    let tenant = super::find(&routing, &args.name)
        .map(view::Tenant::from)
        .ok_or_else(|| objects::not_found("tenant", &args.name))?;
    output::emit(context.format, &tenant, view::tenant_details)
}
