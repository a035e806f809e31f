//! `trunkctl device add AOR --tenant T [--disabled] [continuity flags]`: create a device.
//!
//! The wire's PutDevice replaces, so `add` first reads the configuration as of every
//! committed write and refuses (exit 3) a device that exists; an add racing it still
//! replaces.

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
    let configuration = inbound::list_inbound_latest(context).await?;
    if inbound::find_device(&configuration, &args.aor).is_some() {
        return Err(inbound::already_exists("device", &args.aor));
    }
    let applied_index = inbound::put_device(context, device).await?;
    objects::print_written(context, "device", &args.aor, "created", applied_index)
}
