//! `trunkctl edge add NAME --uri URI [--disabled] [probe flags]`: declare an edge proxy,
//! optionally with its own probe settings.
//!
//! The wire's PutEdge replaces, so `add` first reads the configuration as of every committed
//! write and refuses (exit 3) an edge that exists; an add racing it still replaces. A gateway
//! of the same name is refused by the node (edges and gateways share names).

use trunkline_client::proto;

use crate::{
    commands::{gateway::ProbeFlags, inbound, objects},
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The edge's name as it reports registrations, unique across edges and gateways:
    /// letters, digits, '-', '_' or '.'.
    name: String,
    /// Where its probes go: sip:host[:port][;transport=udp|tcp].
    #[arg(long)]
    uri: String,
    /// Declare it disabled: not probed, its health stays as it was.
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    probe: ProbeFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("edge name", &args.name)?;
    let mut edge = proto::Edge {
        name: args.name.clone(),
        uri: args.uri,
        disabled: args.disabled,
        probe: None,
    };
    args.probe.apply(&mut edge.probe)?;
    inbound::check_edge(&edge)?;
    let configuration = inbound::list_inbound_latest(context).await?;
    if inbound::find_edge(&configuration, &args.name).is_some() {
        return Err(inbound::already_exists("edge", &args.name));
    }
    let applied_index = inbound::put_edge(context, edge).await?;
    objects::print_written(context, "edge", &args.name, "created", applied_index)
}
