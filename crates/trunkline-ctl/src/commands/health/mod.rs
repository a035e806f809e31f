//! `trunkctl health ...`: every gateway's and edge's health as the cluster sees it, and the
//! cluster's health policy (probes, circuit breaker, flapping limit).
//!
//! `trunkctl health` alone lists the gateways and edges; `trunkctl health policy show|set` reads and
//! changes the policy.

mod list;
mod policy;

use crate::context::{Context, Failure};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
#[group(skip)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    list: list::Args,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The cluster's health policy: probes, circuit breaker, flapping limit.
    #[command(subcommand)]
    Policy(policy::Command),
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    match args.command {
        Some(Command::Policy(command)) => policy::exec(command, context).await,
        None => list::exec(args.list, context).await,
    }
}
