//! `trunkctl gateway remove NAME`: delete a gateway.

use trunkline_client::proto;

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The gateway's name.
    name: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::remove(context, proto::ObjectKind::Gateway, "gateway", args.name).await
}
