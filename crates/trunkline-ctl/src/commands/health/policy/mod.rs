//! `trunkctl health policy show|set`: the cluster's health policy.

mod set;
mod show;

use crate::context::{Context, Failure};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Every setting of the policy, with what it means.
    Show(show::Args),
    /// Change the given settings; the others keep their values.
    Set(set::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Show(args) => show::exec(args, context).await,
        Command::Set(args) => set::exec(args, context).await,
    }
}
