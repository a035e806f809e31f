//! `trunkctl tenant remove NAME`: delete a tenant.

use trunkline_client::proto;

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The tenant's name.
    name: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::remove(context, proto::ObjectKind::Tenant, "tenant", args.name).await
}
