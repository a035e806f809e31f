//! `trunkctl edge ...`: the edge proxies devices register through. A declared edge is probed
//! with OPTIONS like a carrier gateway (`trunkctl health` lists it), and calls skip bindings
//! through an edge that is down; an edge never declared counts as up. Edges and gateways
//! share one namespace.

mod add;
mod list;
mod remove;
mod show;
mod update;

use crate::context::{Context, Failure};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Declare an edge proxy, probed from then on (fails if it exists).
    Add(add::Args),
    /// Change the given fields of an edge; the others keep their values.
    Update(update::Args),
    /// One edge's settings.
    Show(show::Args),
    /// Every declared edge.
    List(list::Args),
    /// Forget an edge: no longer probed, its bindings count as up again.
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
