//! `trunkctl did list [--tenant T]`: every DID, or one tenant's.

use crate::{
    commands::{config::ReadFlags, inbound, objects, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// Only this tenant's DIDs.
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    if let Some(tenant) = &args.tenant {
        objects::check_name("--tenant", tenant)?;
    }
    let configuration = inbound::list_inbound(context, args.read.into()).await?;
    let dids: Vec<view::Did> = configuration
        .dids
        .iter()
        .filter(|did| {
            args.tenant
                .as_ref()
                .is_none_or(|tenant| &did.tenant == tenant)
        })
        .map(view::Did::from)
        .collect();
    output::emit(context.format, &dids, |dids| view::dids_table(dids))
}
