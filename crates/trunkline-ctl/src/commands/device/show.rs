//! `trunkctl device show AOR`: one device's settings, the DIDs that ring it, and its live
//! registrations.

use crate::{
    commands::{config::ReadFlags, inbound, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// Its address of record: sip:user@domain.
    aor: String,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    inbound::check_aor("AOR", &args.aor)?;
    let configuration = inbound::list_inbound(context, args.read.into()).await?;
    let device = inbound::find_device(&configuration, &args.aor)
        .map(view::Device::from)
        .ok_or_else(|| inbound::not_found("device", &args.aor))?;
    let dids = configuration
        .dids
        .iter()
        .filter(|did| did.device == args.aor)
        .map(|did| did.number.clone())
        .collect();
    // The same node answers both; at least the configuration's index, so both agree.
    let mut consistency: trunkline_client::proto::ReadConsistency = args.read.into();
    consistency.min_applied_index = consistency.min_applied_index.max(
        configuration
            .read_state
            .as_ref()
            .map_or(0, |state| state.applied_index),
    );
    let bindings = super::list_bindings(context, &args.aor, consistency).await?;
    let details = view::DeviceDetails {
        device,
        dids,
        bindings: view::Bindings::new(&args.aor, &bindings),
    };
    output::emit(context.format, &details, view::device_details)
}
