//! `trunkctl edge add NAME --uri URI [--disabled] [probe flags]`: declare an edge proxy,
//! optionally with its own probe settings.
//!
//! The put is a create: the node refuses an edge that exists (exit 3), even one added by a
//! racing `add`. A gateway of the same name is refused by the node too (edges and gateways
//! share names).

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
    let applied_index = inbound::put_edge(context, edge, proto::PutMode::Create).await?;
    objects::print_written(context, "edge", &args.name, "created", applied_index)
}
