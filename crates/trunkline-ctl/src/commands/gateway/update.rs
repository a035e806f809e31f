//! `trunkctl gateway update NAME [flags]`: change some fields of a gateway.
//!
//! Reads the gateway as of every committed write, changes only the fields given and writes
//! it back whole; a drain stays as it is (`gateway drain`/`undrain` change it), and so do
//! the probe overrides not given (`--probe-defaults` drops them all). A concurrent
//! update of the same gateway between the read and the write is overwritten (routing objects
//! have no version to compare yet).

use trunkline_client::proto;

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The gateway's name.
    name: String,
    /// Move the gateway to another carrier.
    #[arg(long)]
    carrier: Option<String>,
    /// sip:host[:port][;transport=udp|tcp|tls] or sips:host[:port].
    #[arg(long)]
    uri: Option<String>,
    /// Lower is tried first.
    #[arg(long)]
    priority: Option<u32>,
    /// Share of calls among gateways of equal priority; 0 makes it a standby.
    #[arg(long)]
    weight: Option<u32>,
    /// Most calls at once.
    #[arg(long, value_name = "N", conflicts_with = "no_max_calls")]
    max_calls: Option<u32>,
    /// Remove the limit on calls at once.
    #[arg(long)]
    no_max_calls: bool,
    /// Never route to it (kept configured).
    #[arg(long, conflicts_with = "enabled")]
    disabled: bool,
    /// Route to it again after --disabled.
    #[arg(long)]
    enabled: bool,
    /// Drop every probe override first (probed with the cluster's policy); probe flags given
    /// with it are then set.
    #[arg(long)]
    probe_defaults: bool,
    #[command(flatten)]
    probe: super::ProbeFlags,
}

impl Args {
    fn is_empty(&self) -> bool {
        self.carrier.is_none()
            && self.uri.is_none()
            && self.priority.is_none()
            && self.weight.is_none()
            && self.max_calls.is_none()
            && !self.no_max_calls
            && !self.disabled
            && !self.enabled
            && !self.probe_defaults
            && self.probe.is_empty()
    }
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("gateway name", &args.name)?;
    if args.is_empty() {
        return Err(Failure::Usage(
            "nothing to change: give at least one flag (see `trunkctl gateway update --help`)"
                .into(),
        ));
    }
    if let Some(carrier) = &args.carrier {
        objects::check_name("--carrier", carrier)?;
    }
    if let Some(max_calls) = args.max_calls {
        super::check_max_calls(max_calls, "use --no-max-calls for no limit")?;
    }
    if let Some(uri) = &args.uri {
        trunkline_core::routing::SipUri::parse(uri)
            .map_err(|error| objects::usage("--uri", error))?;
    }
    args.probe.check()?;
    let routing = objects::list_routing_latest(context).await?;
    let mut gateway = super::find(&routing, &args.name)
        .cloned()
        .ok_or_else(|| objects::not_found("gateway", &args.name))?;
    if let Some(carrier) = args.carrier {
        gateway.carrier = carrier;
    }
    if let Some(uri) = args.uri {
        gateway.uri = uri;
    }
    if let Some(priority) = args.priority {
        gateway.priority = priority;
    }
    if let Some(weight) = args.weight {
        gateway.weight = weight;
    }
    if let Some(max_calls) = args.max_calls {
        gateway.max_concurrent_calls = max_calls;
    }
    if args.no_max_calls {
        gateway.max_concurrent_calls = 0;
    }
    if args.disabled {
        gateway.disabled = true;
    }
    if args.enabled {
        gateway.disabled = false;
    }
    if args.probe_defaults {
        gateway.probe = None;
    }
    args.probe.apply(&mut gateway.probe)?;
    objects::check_gateway(&gateway)?;
    let applied_index = super::put(context, gateway, proto::PutMode::Replace).await?;
    objects::print_written(context, "gateway", &args.name, "updated", applied_index)
}
