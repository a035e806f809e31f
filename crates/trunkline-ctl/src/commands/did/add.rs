//! `trunkctl did add NUMBER --tenant T [--device AOR] [continuity flags]`: create a DID.
//!
//! The put is a create: the node refuses a number that exists (exit 3), even one added by a
//! racing `add`.

use trunkline_client::proto;

use crate::{
    commands::{continuity::ContinuityFlags, inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The number, E.164 with '+' (e.g. +14155550100).
    number: String,
    /// The tenant it belongs to.
    #[arg(long)]
    tenant: String,
    /// The address of record of the device it rings (sip:user@domain); left out: it only
    /// forwards to its continuity targets.
    #[arg(long, value_name = "AOR")]
    device: Option<String>,
    #[command(flatten)]
    continuity: ContinuityFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_number("NUMBER", &args.number)?;
    objects::check_name("--tenant", &args.tenant)?;
    if let Some(device) = &args.device {
        inbound::check_aor("--device", device)?;
    }
    let mut did = proto::Did {
        number: args.number.clone(),
        tenant: args.tenant,
        device: args.device.unwrap_or_default(),
        continuity: None,
    };
    args.continuity.apply(&mut did.continuity)?;
    inbound::check_did(&did)?;
    let applied_index = inbound::put_did(context, did, proto::PutMode::Create).await?;
    objects::print_written(context, "DID", &args.number, "created", applied_index)
}
