//! `trunkctl did update NUMBER [flags]`: change some fields of a DID.
//!
//! Reads the DID as of every committed write, changes only the fields given and writes it
//! back whole; continuity triggers not given keep their values. A concurrent update of the
//! same DID between the read and the write is overwritten; the write is a replace, so a DID
//! removed in between is not brought back (exit 3, not found).

use trunkline_client::proto;

use crate::{
    commands::{continuity::ContinuityFlags, inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The number, E.164 with '+'.
    number: String,
    /// Move the DID to another tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Ring this device (sip:user@domain).
    #[arg(long, value_name = "AOR", conflicts_with = "no_device")]
    device: Option<String>,
    /// Ring no device: only forward to the continuity targets.
    #[arg(long)]
    no_device: bool,
    #[command(flatten)]
    continuity: ContinuityFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_number("NUMBER", &args.number)?;
    if args.tenant.is_none()
        && args.device.is_none()
        && !args.no_device
        && args.continuity.is_empty()
    {
        return Err(Failure::Usage(
            "nothing to change: give at least one flag (see `trunkctl did update --help`)".into(),
        ));
    }
    if let Some(tenant) = &args.tenant {
        objects::check_name("--tenant", tenant)?;
    }
    if let Some(device) = &args.device {
        inbound::check_aor("--device", device)?;
    }
    args.continuity.check()?;
    let configuration = inbound::list_inbound_latest(context).await?;
    let mut did = inbound::find_did(&configuration, &args.number)
        .cloned()
        .ok_or_else(|| inbound::not_found("did", &args.number))?;
    if let Some(tenant) = args.tenant {
        did.tenant = tenant;
    }
    if let Some(device) = args.device {
        did.device = device;
    }
    if args.no_device {
        did.device.clear();
    }
    args.continuity.apply(&mut did.continuity)?;
    inbound::check_did(&did)?;
    let applied_index = inbound::put_did(context, did, proto::PutMode::Replace).await?;
    objects::print_written(context, "DID", &args.number, "updated", applied_index)
}
