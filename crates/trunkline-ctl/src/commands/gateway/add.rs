//! `trunkctl gateway add NAME --carrier C --uri URI [flags]`: create a gateway, optionally
//! with its own probe settings.

use trunkline_client::proto;

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The gateway's name, unique across carriers: letters, digits, '-', '_' or '.'.
    name: String,
    /// The carrier it belongs to.
    #[arg(long)]
    carrier: String,
    /// sip:host[:port][;transport=udp|tcp|tls] or sips:host[:port].
    #[arg(long)]
    uri: String,
    /// Lower is tried first.
    #[arg(long, default_value_t = 0)]
    priority: u32,
    /// Share of calls among gateways of equal priority; 0 makes it a standby.
    #[arg(long, default_value_t = 1)]
    weight: u32,
    /// Most calls at once; no limit when left out.
    #[arg(long, value_name = "N")]
    max_calls: Option<u32>,
    /// Create it disabled: configured, but never routed to.
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    probe: super::ProbeFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("gateway name", &args.name)?;
    objects::check_name("--carrier", &args.carrier)?;
    let max_concurrent_calls = match args.max_calls {
        Some(max_calls) => super::check_max_calls(max_calls, "leave it out for no limit")?,
        None => 0,
    };
    let mut gateway = proto::Gateway {
        name: args.name.clone(),
        carrier: args.carrier,
        uri: args.uri,
        priority: args.priority,
        weight: args.weight,
        max_concurrent_calls,
        disabled: args.disabled,
        drained: false,
        probe: None,
    };
    args.probe.apply(&mut gateway.probe)?;
    objects::check_gateway(&gateway)?;
    let applied_index = super::put(context, gateway, proto::PutMode::Create).await?;
    objects::print_written(context, "gateway", &args.name, "created", applied_index)
}
