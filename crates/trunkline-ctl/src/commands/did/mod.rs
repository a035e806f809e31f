//! `trunkctl did ...`: public numbers (DIDs), the device each rings, and where their calls go
//! when the device can't take them.

mod add;
mod list;
mod remove;
mod show;
mod update;

use crate::context::{Context, Failure};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a DID (fails if it exists).
    Add(add::Args),
    /// Change the given fields of a DID; the others keep their values.
    Update(update::Args),
    /// One DID's settings.
    Show(show::Args),
    /// Every DID, or a tenant's.
    List(list::Args),
    /// Delete a DID.
    Remove(remove::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add(args) => add::exec(args, context).await,
        Command::Update(args) => update::exec(args, context).await,
        Command::Show(args) => show::exec(args, context).await,
        Command::List(args) => list::exec(args, context).await,
        Command::Remove(args) => remove::exec(args, context).await,
    }
}
