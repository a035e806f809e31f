//! `trunkctl continuity clear --tenant T`: remove a tenant's default plan.

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The tenant.
    #[arg(long)]
    tenant: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("--tenant", &args.tenant)?;
    let applied_index = super::set_plan(context, &args.tenant, None).await?;
    objects::print_written(
        context,
        "continuity plan of tenant",
        &args.tenant,
        "cleared",
        applied_index,
    )
}
