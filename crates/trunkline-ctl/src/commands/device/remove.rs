//! `trunkctl device remove AOR`: delete a device (the node refuses while a DID rings it).

use trunkline_client::proto;

use crate::{
    commands::{inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// Its address of record: sip:user@domain.
    aor: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_aor("AOR", &args.aor)?;
    let applied_index =
        inbound::delete(context, proto::ObjectKind::Device, "device", &args.aor).await?;
    objects::print_written(context, "device", &args.aor, "removed", applied_index)
}
