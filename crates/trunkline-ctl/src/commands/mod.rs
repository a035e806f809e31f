//! trunkctl's subcommands, one file each with its arguments and an `exec`.

pub mod cluster;
pub mod config;
mod view;

use crate::context::{Context, Failure};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Cluster membership and status.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// The replicated settings namespace.
    #[command(subcommand)]
    Config(config::Command),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Cluster(command) => cluster::exec(command, context).await,
        Command::Config(command) => config::exec(command, context).await,
    }
}
