//! `trunkctl route ...`: ask the cluster where a call would go, as a SIP proxy does:
//! outbound to carriers (`test`) or inbound to a DID (`inbound`).

mod inbound;
mod test;

use crate::context::{Context, Failure};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Route a number for a tenant and explain every carrier and gateway kept or dropped.
    Test(test::Args),
    /// Route a call to a DID and explain: the device's contacts, then continuity targets.
    Inbound(inbound::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Test(args) => test::exec(args, context).await,
        Command::Inbound(args) => inbound::exec(args, context).await,
    }
}
