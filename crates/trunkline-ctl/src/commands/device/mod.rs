//! `trunkctl device ...`: customers' phones and softphones, known by their address of record,
//! and where the edges have seen them registered.

mod add;
mod bindings;
mod list;
mod remove;
mod show;
mod update;

use trunkline_client::{proto, Retry};

use crate::{
    commands::inbound,
    context::{Context, Failure},
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a device (fails if it exists).
    Add(add::Args),
    /// Change the given fields of a device; the others keep their values.
    Update(update::Args),
    /// One device's settings, the DIDs that ring it and its live registrations.
    Show(show::Args),
    /// Every device, or a tenant's.
    List(list::Args),
    /// Delete a device.
    Remove(remove::Args),
    /// A device's live registrations, most recently refreshed first.
    Bindings(bindings::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add(args) => add::exec(args, context).await,
        Command::Update(args) => update::exec(args, context).await,
        Command::Show(args) => show::exec(args, context).await,
        Command::List(args) => list::exec(args, context).await,
        Command::Remove(args) => remove::exec(args, context).await,
        Command::Bindings(args) => bindings::exec(args, context).await,
    }
}

/// A device's live bindings.
async fn list_bindings(
    context: &Context,
    aor: &str,
    consistency: proto::ReadConsistency,
) -> Result<proto::ListBindingsResponse, Failure> {
    let request = proto::ListBindingsRequest {
        aor: aor.to_owned(),
        consistency: Some(consistency),
    };
    context
        .client
        .admin(Retry::Idempotent, |mut admin| {
            let request = request.clone();
            async move { admin.list_bindings(request).await }
        })
        .await
        .map_err(inbound::or_not_found("device", aor))
}
