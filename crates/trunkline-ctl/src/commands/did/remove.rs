//! `trunkctl did remove NUMBER`: delete a DID.

use trunkline_client::proto;

use crate::{
    commands::{inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The number, E.164 with '+'.
    number: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_number("NUMBER", &args.number)?;
    let applied_index =
        inbound::delete(context, proto::ObjectKind::Did, "did", &args.number).await?;
    objects::print_written(context, "DID", &args.number, "removed", applied_index)
}
