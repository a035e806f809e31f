//! `trunkctl carrier show NAME`: one carrier's settings, deck size and gateways.

use serde::Serialize;

use crate::{
    commands::{config::ReadFlags, objects, view},
    context::{Context, Failure},
    output,
};

#[derive(clap::Args)]
pub struct Args {
    /// The carrier's name.
    name: String,
    #[command(flatten)]
    read: ReadFlags,
}

#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    carrier: view::Carrier,
    gateways: Vec<view::Gateway>,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("carrier name", &args.name)?;
    let routing = objects::list_routing(context, args.read.into()).await?;
    let carrier = super::find(&routing, &args.name)
        .map(|carrier| view::Carrier::new(carrier, super::deck_rows(&routing, &args.name)))
        .ok_or_else(|| objects::not_found("carrier", &args.name))?;
    let gateways = routing
        .gateways
        .iter()
        .filter(|gateway| gateway.carrier == args.name)
        .map(view::Gateway::from)
        .collect();
    let shown = Shown { carrier, gateways };
    output::emit(context.format, &shown, |shown| {
        let mut text = view::carrier_details(&shown.carrier);
        if shown.gateways.is_empty() {
            text.push_str("\nNo gateways: add one with `trunkctl gateway add`.\n");
        } else {
            text.push('\n');
            text.push_str(&view::gateways_table(&shown.gateways));
        }
        text
    })
}
