//! `trunkctl carrier disable NAME`: stop routing to a carrier, keeping its configuration,
//! gateways and deck.

use crate::{
    commands::objects,
    context::{Context, Failure},
};

#[derive(clap::Args)]
pub struct Args {
    /// The carrier's name.
    name: String,
}

pub async fn exec(args: Args, context: &Context) -> Result<(), Failure> {
    objects::check_name("carrier name", &args.name)?;
    let applied_index = super::read_modify_write(context, &args.name, |carrier| {
        carrier.disabled = true;
        Ok(())
    })
    .await?;
    objects::print_written(context, "carrier", &args.name, "disabled", applied_index)
}
