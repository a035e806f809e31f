//! `trunkctl device update AOR [flags]`: change some fields of a device.
//!
//! Reads the device as of every committed write, changes only the fields given and writes it
//! back whole; continuity triggers not given keep their values. A concurrent update of the
//! same device between the read and the write is overwritten; the write is a replace, so a
//! device removed in between is not brought back (exit 3, not found).

use trunkline_client::proto;

use crate::{
    commands::{continuity::ContinuityFlags, inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// Its address of record: sip:user@domain.
    aor: String,
    /// Move the device to another tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Never ring it: its DIDs go straight to continuity.
    #[arg(long, conflicts_with = "enabled")]
    disabled: bool,
    /// Ring it again after --disabled.
    #[arg(long)]
    enabled: bool,
    #[command(flatten)]
    continuity: ContinuityFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_aor("AOR", &args.aor)?;
    if args.tenant.is_none() && !args.disabled && !args.enabled && args.continuity.is_empty() {
        return Err(Failure::Usage(
            "nothing to change: give at least one flag (see `trunkctl device update --help`)"
                .into(),
        ));
    }
    if let Some(tenant) = &args.tenant {
        objects::check_name("--tenant", tenant)?;
    }
    args.continuity.check()?;
    let configuration = inbound::list_inbound_latest(context).await?;
    let mut device = inbound::find_device(&configuration, &args.aor)
        .cloned()
        .ok_or_else(|| inbound::not_found("device", &args.aor))?;
    if let Some(tenant) = args.tenant {
        device.tenant = tenant;
    }
    if args.disabled {
        device.disabled = true;
    }
    if args.enabled {
        device.disabled = false;
    }
    args.continuity.apply(&mut device.continuity)?;
    inbound::check_device(&device)?;
    let applied_index = inbound::put_device(context, device, proto::PutMode::Replace).await?;
    objects::print_written(context, "device", &args.aor, "updated", applied_index)
}
