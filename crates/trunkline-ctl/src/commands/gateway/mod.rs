//! `trunkctl gateway ...`: the SIP endpoints of carriers, and draining them for maintenance.

mod add;
mod drain;
mod list;
mod remove;
mod show;
mod undrain;
mod update;

use trunkline_client::{proto, Retry};

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a gateway of a carrier (fails if it exists).
    Add(add::Args),
    /// Change the given fields of a gateway; the others keep their values.
    Update(update::Args),
    /// One gateway's settings.
    Show(show::Args),
    /// Every gateway, or a carrier's.
    List(list::Args),
    /// Delete a gateway.
    Remove(remove::Args),
    /// Maintenance: send no new calls to a gateway until it is undrained.
    Drain(drain::Args),
    /// End maintenance: route to a drained gateway again.
    Undrain(undrain::Args),
}

pub async fn exec(command: Command, context: &Context) -> Result<(), Failure> {
    match command {
        Command::Add(args) => add::exec(args, context).await,
        Command::Update(args) => update::exec(args, context).await,
        Command::Show(args) => show::exec(args, context).await,
        Command::List(args) => list::exec(args, context).await,
        Command::Remove(args) => remove::exec(args, context).await,
        Command::Drain(args) => drain::exec(args, context).await,
        Command::Undrain(args) => undrain::exec(args, context).await,
    }
}

/// `--max-calls`: 0 is refused, because on the wire it means "no limit".
fn check_max_calls(max_calls: u32, instead: &str) -> Result<u32, Failure> {
    if max_calls == 0 {
        Err(objects::usage(
            "--max-calls",
            format!("must be at least 1; {instead}"),
        ))
    } else {
        Ok(max_calls)
    }
}

fn find<'a>(routing: &'a proto::ListRoutingResponse, name: &str) -> Option<&'a proto::Gateway> {
    routing.gateways.iter().find(|gateway| gateway.name == name)
}

async fn put(
    context: &Context,
    gateway: proto::Gateway,
    mode: proto::PutMode,
) -> Result<u64, Failure> {
    let request = proto::PutGatewayRequest {
        gateway: Some(gateway),
        mode: mode.into(),
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.put_gateway(request).await }
        })
        .await?;
    Ok(response.applied_index)
}

/// Drains or undrains a gateway.
async fn set_drained(context: &Context, name: String, drained: bool) -> Result<(), Failure> {
    objects::check_name("gateway name", &name)?;
    let request = proto::DrainGatewayRequest {
        gateway: name.clone(),
        drained,
    };
    let response = context
        .client
        .admin(Retry::NotSent, |mut admin| {
            let request = request.clone();
            async move { admin.drain_gateway(request).await }
        })
        .await?;
    let action = if drained { "drained" } else { "undrained" };
    objects::print_written(context, "gateway", &name, action, response.applied_index)
}
