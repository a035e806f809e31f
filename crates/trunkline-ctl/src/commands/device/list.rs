//! `trunkctl device list [--tenant T]`: every device, or one tenant's.

use crate::{
    commands::{config::ReadFlags, inbound, objects, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// Only this tenant's devices.
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
    let devices: Vec<view::Device> = configuration
        .devices
        .iter()
        .filter(|device| {
            args.tenant
                .as_ref()
                .is_none_or(|tenant| &device.tenant == tenant)
        })
        .map(view::Device::from)
        .collect();
    output::emit(context.format, &devices, |devices| {
        view::devices_table(devices)
    })
}
