//! `trunkctl continuity set --tenant T [continuity flags]`: change a tenant's default plan.
//!
//! Reads the plan as of every committed write, changes what was given and writes it back
//! whole; a concurrent change between the read and the write is overwritten.

use crate::{
    commands::{inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    #[command(flatten)]
    continuity: super::ContinuityFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("--tenant", &args.tenant)?;
    if args.continuity.is_empty() {
        return Err(Failure::Usage(
            "nothing to change: give at least one flag (see `trunkctl continuity set --help`)"
                .into(),
        ));
    }
    args.continuity.check()?;
    let configuration = inbound::list_inbound_latest(context).await?;
    let mut plan = super::find(&configuration, &args.tenant).cloned();
    args.continuity.apply(&mut plan)?;
    inbound::check_plan(plan.as_ref())?;
    let action = if plan.is_some() { "set" } else { "cleared" };
    let applied_index = super::set_plan(context, &args.tenant, plan).await?;
    objects::print_written(
        context,
        "continuity plan of tenant",
        &args.tenant,
        action,
        applied_index,
    )
}
