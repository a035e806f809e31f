//! `trunkctl edge update NAME [flags]`: change some fields of an edge.
//!
//! Reads the edge as of every committed write, changes only the fields given and writes it
//! back whole; the probe overrides not given keep their values (`--probe-defaults` drops
//! them all). A concurrent update of the same edge between the read and the write is
//! overwritten; the write is a replace, so an edge removed in between is not brought back
//! (exit 3, not found).

use trunkline_client::proto;

use crate::{
    commands::{gateway::ProbeFlags, inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The edge's name.
    name: String,
    /// Where its probes go: sip:host[:port][;transport=udp|tcp].
    #[arg(long)]
    uri: Option<String>,
    /// Stop probing it; its health stays as it was.
    #[arg(long, conflicts_with = "enabled")]
    disabled: bool,
    /// Probe it again after --disabled.
    #[arg(long)]
    enabled: bool,
    /// Drop every probe override first (probed with the cluster's policy); probe flags given
    /// with it are then set.
    #[arg(long)]
    probe_defaults: bool,
    #[command(flatten)]
    probe: ProbeFlags,
}

impl Args {
    fn is_empty(&self) -> bool {
        self.uri.is_none()
            && !self.disabled
            && !self.enabled
            && !self.probe_defaults
            && self.probe.is_empty()
    }
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("edge name", &args.name)?;
    if args.is_empty() {
        return Err(Failure::Usage(
            "nothing to change: give at least one flag (see `trunkctl edge update --help`)".into(),
        ));
    }
    if let Some(uri) = &args.uri {
        inbound::check_edge_uri(uri)?;
    }
    args.probe.check()?;
    let configuration = inbound::list_inbound_latest(context).await?;
    let mut edge = inbound::find_edge(&configuration, &args.name)
        .cloned()
        .ok_or_else(|| inbound::not_found("edge", &args.name))?;
    if let Some(uri) = args.uri {
        edge.uri = uri;
    }
    if args.disabled {
        edge.disabled = true;
    }
    if args.enabled {
        edge.disabled = false;
    }
    if args.probe_defaults {
        edge.probe = None;
    }
    args.probe.apply(&mut edge.probe)?;
    inbound::check_edge(&edge)?;
    let applied_index = inbound::put_edge(context, edge, proto::PutMode::Replace).await?;
    objects::print_written(context, "edge", &args.name, "updated", applied_index)
}
