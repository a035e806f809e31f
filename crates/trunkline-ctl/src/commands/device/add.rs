//! `trunkctl device add AOR --tenant T [--disabled] [continuity flags]`: create a device.
//!
//! The put is a create: the node refuses a device that exists (exit 3), even one added by a
//! racing `add`.

use trunkline_client::proto;

use crate::{
    commands::{continuity::ContinuityFlags, inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// Its address of record: sip:user@domain, the domain in lower case.
    aor: String,
    /// The tenant it belongs to.
    #[arg(long)]
    tenant: String,
    /// Create it disabled: its DIDs go straight to continuity.
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    continuity: ContinuityFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_aor("AOR", &args.aor)?;
    objects::check_name("--tenant", &args.tenant)?;
    let mut device = proto::Device {
        aor: args.aor.clone(),
        tenant: args.tenant,
        disabled: args.disabled,
        continuity: None,
    };
    args.continuity.apply(&mut device.continuity)?;
    inbound::check_device(&device)?;
    let applied_index = inbound::put_device(context, device, proto::PutMode::Create).await?;
    objects::print_written(context, "device", &args.aor, "created", applied_index)
}
