//! `trunkctl gateway list [--carrier C]`: every gateway, or one carrier's.

use crate::{
    commands::{config::ReadFlags, objects, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// Only this carrier's gateways.
    #[arg(long)]
    carrier: Option<String>,
    #[command(flatten)]
    read: ReadFlags,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    if let Some(carrier) = &args.carrier {
        objects::check_name("--carrier", carrier)?;
    }
    let routing = objects::list_routing(context, args.read.into()).await?;
    let gateways: Vec<view::Gateway> = routing
        .gateways
        .iter()
        .filter(|gateway| {
            args.carrier
                .as_ref()
                .is_none_or(|carrier| &gateway.carrier == carrier)
        })
        .map(view::Gateway::from)
        .collect();
    output::emit(context.format, &gateways, |gateways| {
        view::gateways_table(gateways)
    })
}
