//! `trunkctl cluster ...`: membership and status.

mod init;
mod join;
mod members;
mod promote;
mod remove;
mod status;

use crate::context::{Context, Failure};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make the node at the first endpoint the first member of a new cluster (once).
    Init(init::Args),
    /// Add a running, empty node as a learner (replicates and serves reads, no vote).
    Join(join::Args),
    /// Make a learner a voter.
    Promote(promote::Args),
    /// Remove a voter or learner.
    Remove(remove::Args),
    /// Leader, term, indexes and replication lag.
    Status(status::Args),
    /// Members with their roles and addresses.
    Members(members::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Init(args) => init::exec(args, context).await,
        Command::Join(args) => join::exec(args, context).await,
        Command::Promote(args) => promote::exec(args, context).await,
        Command::Remove(args) => remove::exec(args, context).await,
        Command::Status(args) => status::exec(args, context).await,
        Command::Members(args) => members::exec(args, context).await,
    }
}

/// The answer to a membership change, as printed.
#[derive(serde::Serialize)]
struct MembershipChange {
    log_index: u64,
    members: Vec<super::view::Member>,
}

fn print_membership(
    context: &Context,
    response: trunkline_client::proto::MembershipResponse,
    done: String,
) -> Result<(), Failure> {
    let change = MembershipChange {
        log_index: response.log_index,
        members: super::view::members(&response.members),
    };
    crate::output::emit(context.format, &change, |change| {
        format!(
            "{done} (log index {})\n\n{}",
            change.log_index,
            super::view::members_table(&change.members)
        )
    })
}
