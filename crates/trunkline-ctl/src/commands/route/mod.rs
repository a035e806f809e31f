//! `trunkctl route ...`: ask the cluster where a call would go, as a SIP proxy does.

mod test;

use crate::context::{Context, Failure};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Route a number for a tenant and explain every carrier and gateway kept or dropped.
    Test(test::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Test(args) => test::exec(args, context).await,
    }
}
