//! `trunkctl continuity show --tenant T`: a tenant's default continuity plan.

use crate::{
    commands::{config::ReadFlags, inbound, objects, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("--tenant", &args.tenant)?;
    let configuration = inbound::list_inbound(context, args.read.into()).await?;
    let plan = view::TenantContinuity {
        tenant: args.tenant.clone(),
        plan: super::find(&configuration, &args.tenant).map(view::ContinuityPlan::from),
    };
    output::emit(context.format, &plan, view::tenant_continuity_details)
}
