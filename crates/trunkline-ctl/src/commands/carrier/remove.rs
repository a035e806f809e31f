//! `trunkctl carrier remove NAME`: delete a carrier.

use trunkline_client::proto;

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The carrier's name.
    name: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::remove(context, proto::ObjectKind::Carrier, "carrier", args.name).await
}
