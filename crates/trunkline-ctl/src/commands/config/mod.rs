//! `trunkctl config ...`: the replicated settings namespace.

mod cas;
mod delete;
mod get;
mod list;
mod set;

use serde::Serialize;
use trunkline_client::proto;

use crate::{
    commands::view,
    context::{Context, Failure},
    output,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a key's value.
    Get(get::Args),
    /// List keys under a prefix.
    List(list::Args),
    /// Set a key.
    Set(set::Args),
    /// Delete a key.
    Delete(delete::Args),
    /// Set or delete a key only if it holds the expected value.
    Cas(cas::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Get(args) => get::exec(args, context).await,
        Command::List(args) => list::exec(args, context).await,
        Command::Set(args) => set::exec(args, context).await,
        Command::Delete(args) => delete::exec(args, context).await,
        Command::Cas(args) => cas::exec(args, context).await,
    }
}

/// How fresh a read must be, shared by `get` and `list`.
#[derive(clap::Args, Clone, Copy)]
pub struct ReadFlags {
    /// Confirm with the leader that the answer includes every committed write.
    #[arg(long)]
    linearizable: bool,
    /// Wait until the node has applied at least this log index (read your writes).
    #[arg(long, default_value_t = 0)]
    min_index: u64,
    /// Refuse an answer from a node that has not heard from a leader for longer than this.
    #[arg(long, default_value_t = 0)]
    max_staleness_ms: u64,
}

impl From<ReadFlags> for proto::ReadConsistency {
    fn from(flags: ReadFlags) -> Self {
        proto::ReadConsistency {
            min_applied_index: flags.min_index,
            linearizable: flags.linearizable,
            max_staleness_ms: flags.max_staleness_ms,
        }
    }
}

#[derive(Serialize)]
struct WriteResult {
    succeeded: bool,
    applied_index: u64,
    current: Option<view::Setting>,
}

/// Prints a write's outcome; a write whose condition failed exits 3.
fn print_write(
    context: &Context,
    key: &str,
    response: proto::SettingWriteResponse,
    failed: &str,
) -> Result<(), Failure> {
    let result = WriteResult {
        succeeded: response.succeeded,
        applied_index: response.applied_index,
        current: response.current.as_ref().map(view::Setting::from),
    };
    output::emit(context.format, &result, |result| {
        match (&result.current, result.succeeded) {
            (Some(setting), true) => format!(
                "{key} = {} (version {}, log index {})",
                setting.value, setting.version, result.applied_index
            ),
            (None, true) => format!("{key} deleted (log index {})", result.applied_index),
            (Some(setting), false) => format!(
                "{key} holds {:?} (version {})",
                setting.value, setting.version
            ),
            (None, false) => format!("{key} does not exist"),
        }
    })?;
    if result.succeeded {
        Ok(())
    } else {
        Err(Failure::ConditionFailed(failed.to_owned()))
    }
}

fn validate_key(key: &str) -> Result<(), Failure> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Failure::Usage(format!(
            "key {key:?}: use 1 to 256 printable ASCII characters without spaces"
        )));
    }
    Ok(())
}
